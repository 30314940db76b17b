"""The notification feed over HTTP on the shipped types (SQLite and PostgreSQL): a complaint's
acknowledgement breach notifies supervisors; who sees it, the read mark, and auth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.wiring import Runtime
from casestore import cases, users
from casestore.models import utcnow
from casestore.work.clock_loop import sweep
from casestore.work.inbound import start_imported
from tests.api.conftest import JANE_CASE, SAM_CASE, bearer, two_team_runtime


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = two_team_runtime(tmp_path, db_url)
    setup = runtime.work  # loads and stores the shipped definitions in its own transaction
    with runtime.sessions() as s, s.begin():
        for ref in (JANE_CASE, SAM_CASE):
            case = cases.find_case(s, ref=ref)
            assert case is not None
            start_imported(s, case=case, setup=setup)
        users.add_user(s, name="cat", role="supervisor", teams=["complaints"])
        users.add_user(s, name="sam", role="supervisor", teams=["claims"])
    with runtime.sessions() as s, s.begin():  # a month on: the acknowledgement (4h) has long breached
        sweep(s, now=utcnow() + timedelta(days=30))
    yield runtime
    runtime.close()


def test_the_feed_shows_a_supervisor_what_was_addressed_to_their_teams_supervisors(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    assert client.get("/api/v1/notifications").status_code == 401
    assert client.post("/api/v1/notifications/seen", json={}).status_code == 401
    cat, sam, alice = bearer(rt, "cat"), bearer(rt, "sam"), bearer(rt, "alice")

    feed = client.get("/api/v1/notifications", headers=cat).json()
    acks = [n for n in feed["notices"] if n["clock"] == "acknowledgement"]
    assert [(n["case_ref"], n["role"], n["event"], n["unread"]) for n in acks] == [
        (JANE_CASE, "supervisor", "breach", True)]
    assert {n["case_ref"] for n in feed["notices"]} == {JANE_CASE}, "only the complaints team's cases"
    assert feed["unread"] == len(feed["notices"]) >= 1
    assert "breached" in acks[0]["message"] and acks[0]["case_type"] == "complaint"

    sams = client.get("/api/v1/notifications", headers=sam).json()["notices"]
    assert JANE_CASE not in {n["case_ref"] for n in sams}
    assert client.get("/api/v1/notifications", headers=alice).json()["notices"] == [], "addressed to supervisors"

    seen = client.post("/api/v1/notifications/seen", headers=cat, json={})
    assert seen.status_code == 200, seen.text
    assert seen.json()["unread"] == 0
    after = client.get("/api/v1/notifications", headers=cat).json()
    assert after["unread"] == 0 and not any(n["unread"] for n in after["notices"])
    assert client.get("/api/v1/notifications", headers=cat, params={"unread": "true"}).json()["notices"] == []
    bad = client.post("/api/v1/notifications/seen", headers=cat, json={"up_to": -1})
    assert bad.status_code == 422 and "detail" in bad.json()
