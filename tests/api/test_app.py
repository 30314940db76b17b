"""The HTTP API on a real store and the embedded bus, with the pipeline running."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, users
from casestore.db import make_engine
from connectors.metrics import REGISTRY
from ingest.pipeline import PipelineRunner


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=tmp_path / "data"))
    with runtime.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com")
        customers.upsert_customer(s, customer_id="C2", name="Sam Poe", email="sam@example.com")
        cases.upsert_case(s, ref="CM-2025-000001", customer_id="C1", case_type="complaint", status="open",
                          opened_at=None, subject="noise at night", team="complaints")
        cases.upsert_case(s, ref="CM-2025-000002", customer_id="C2", case_type="claim", status="open",
                          opened_at=None, subject="water damage", team="claims")
        users.add_user(s, name="robot", role="integration", teams=["complaints", "claims"])  # files for both
        users.add_user(s, name="alice", role="agent", teams=["complaints"])
        users.add_user(s, name="sue", role="supervisor")
    runner = PipelineRunner(runtime.pipeline_parts())
    runner.start()
    yield runtime
    runner.close()
    runtime.close()


def token(rt: Runtime, name: str) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        return {"Authorization": f"Bearer {users.create_token(s, name=name)}"}


def wait_for_item(client: TestClient, item_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/items/{item_id}", headers=headers)
        if r.status_code == 200 and r.json()["outcome"] is not None:
            return dict(r.json())
        time.sleep(0.05)
    raise AssertionError(f"item {item_id} not filed within 30 s")


def test_health_is_open_and_everything_else_needs_a_token(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/api/v1/cases/CM-2025-000001").status_code == 401
    bad = client.get("/api/v1/cases/CM-2025-000001", headers={"Authorization": "Bearer cw_not-a-token"})
    assert bad.status_code == 401
    r = client.post("/api/v1/items", files={"file": ("a.txt", b"hello")})
    assert r.status_code == 401


def test_health_tells_a_stranger_up_or_down_and_a_token_holder_the_details(rt: Runtime) -> None:
    """Issue 16, point 8: without a token /health published connector counters and the last error
    text, which /metrics keeps behind a token."""
    REGISTRY.get("twilio", "twilio").record_failed("X-Twilio-Signature missing from 203.0.113.9")
    client = TestClient(create_app(rt))
    stranger = client.get("/health")
    assert stranger.status_code == 200 and stranger.json() == {"status": "ok"}
    assert "203.0.113.9" not in stranger.text
    sue = token(rt, "sue")
    detail = client.get("/health", headers=sue)
    assert detail.status_code == 200
    assert detail.json()["db"] == "ok" and "203.0.113.9" in detail.json()["connectors"]["twilio"]["last_error"]
    wrong = client.get("/health", headers={"Authorization": "Bearer cw_not-a-token"})
    assert wrong.status_code == 401 and "connectors" not in wrong.text

    REGISTRY.get("twilio").set_state("error", "ConnectError: 10.0.0.7 refused")
    try:
        degraded = client.get("/health")
        assert degraded.status_code == 200 and degraded.json() == {"status": "degraded"}
    finally:
        REGISTRY.get("twilio").set_state("running")

    free = socket.socket()
    free.bind(("127.0.0.1", 0))  # a loopback port nothing listens on: a store that is down
    down = replace(rt, engine=make_engine(f"postgresql+psycopg://casework@127.0.0.1:{free.getsockname()[1]}/x"))
    try:
        answer = TestClient(create_app(down)).get("/health", headers=sue)
        assert answer.status_code == 503 and answer.json() == {"status": "degraded"}
    finally:
        down.engine.dispose()
        free.close()


def test_upload_is_filed_and_idempotent(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    robot = token(rt, "robot")
    body = b"About CM-2025-000001: the noise continues every night."
    form = {"channel": "api", "source_id": "ext-42", "metadata": '{"sender_email": "jane@example.com"}'}
    r = client.post("/api/v1/items", headers=robot, files={"file": ("letter.txt", body, "text/plain")}, data=form)
    assert r.status_code == 202, r.text
    item_id = r.json()["item_id"]
    view = wait_for_item(client, item_id, robot)
    assert view["outcome"] == "attached" and view["case_ref"] == "CM-2025-000001"
    assert "noise continues" in view["text"]

    again = client.post("/api/v1/items", headers=robot, files={"file": ("letter.txt", body, "text/plain")}, data=form)
    assert again.status_code == 202 and again.json() | {"status_url": ""} == {
        "item_id": item_id, "idempotency_key": "api:user:robot:api:ext-42", "duplicate": True, "status_url": ""}
    sue = token(rt, "sue")
    folder = client.get("/api/v1/cases/CM-2025-000001", headers=sue).json()
    assert [d["item_id"] for d in folder["documents"]] == [item_id]


def test_bad_uploads_get_clear_4xx(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    robot = token(rt, "robot")
    empty = client.post("/api/v1/items", headers=robot, files={"file": ("e.txt", b"")})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    bad_meta = client.post("/api/v1/items", headers=robot, files={"file": ("a.txt", b"x")}, data={"metadata": "[1"})
    assert bad_meta.status_code == 422 and "JSON" in bad_meta.json()["detail"]
    bad_channel = client.post("/api/v1/items", headers=robot, files={"file": ("a.txt", b"x")},
                              data={"channel": "pigeon"})
    assert bad_channel.status_code == 422


def test_agents_see_only_their_teams_cases(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    alice, sue = token(rt, "alice"), token(rt, "sue")
    assert client.get("/api/v1/cases/CM-2025-000001", headers=alice).status_code == 200
    hidden = client.get("/api/v1/cases/CM-2025-000002", headers=alice)
    assert hidden.status_code == 404 and "water damage" not in hidden.text
    assert client.get("/api/v1/cases/CM-2025-000002", headers=sue).status_code == 200
    assert client.get("/api/v1/cases/NOPE-1", headers=sue).status_code == 404


def test_triage_queue_and_resolution_through_the_api(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    robot, alice, sue = token(rt, "robot"), token(rt, "alice"), token(rt, "sue")
    stranger = b"Re CM-2025-000001: send me everything you hold on this case."
    r = client.post("/api/v1/items", headers=robot, files={"file": ("x.txt", stranger, "text/plain")},
                    data={"metadata": '{"sender_email": "mallory@evil.example"}'})
    item_id = r.json()["item_id"]
    assert wait_for_item(client, item_id, robot)["outcome"] == "triage"

    assert client.get("/api/v1/triage", headers=robot).status_code == 403, "integrations do not work triage"
    queue = client.get("/api/v1/triage", headers=alice).json()
    entry = next(q for q in queue if q["item_id"] == item_id)
    assert "CM-2025-000001" in entry["candidates"]

    hidden = client.post(f"/api/v1/triage/{item_id}/resolve", headers=alice,
                         json={"action": "attach", "case_ref": "CM-2025-000002", "reason": "x"})
    assert hidden.status_code == 404, "an agent cannot file into another team's case"
    done = client.post(f"/api/v1/triage/{item_id}/resolve", headers=sue,
                       json={"action": "noise", "reason": "phishing attempt", "doc_type": "general_enquiry"})
    assert done.status_code == 200 and done.json()["outcome"] == "noise"
    again = client.post(f"/api/v1/triage/{item_id}/resolve", headers=sue, json={"action": "noise"})
    assert again.status_code == 409
    assert all(q["item_id"] != item_id for q in client.get("/api/v1/triage", headers=sue).json())
    folder = client.get("/api/v1/cases/CM-2025-000001", headers=sue).json()
    assert folder["documents"] == []


def test_metrics_need_a_token(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=token(rt, "sue")).status_code == 200


def _search(client: TestClient, headers: dict[str, str], q: str, expect: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30  # the file stage indexes each batch just after it commits
    while True:
        found = client.get("/api/v1/search", headers=headers, params={"q": q}).json()
        if found["total"] == expect or time.monotonic() > deadline:
            return dict(found)
        time.sleep(0.1)


def _triaged_then_attached_to_claims(client: TestClient, rt: Runtime, word: str) -> tuple[str, dict[str, Any]]:
    """A stranger's item quoting the complaints case (so: triage), found by agents of any team,
    then attached by a supervisor to the claims case; (item id, the resolution's response)."""
    robot, alice, sue = token(rt, "robot"), token(rt, "alice"), token(rt, "sue")
    text = f"Re CM-2025-000001: {word} damage to my shed".encode()  # a reference nobody agrees with
    r = client.post("/api/v1/items", headers=robot, files={"file": ("x.txt", text, "text/plain")},
                    data={"metadata": '{"sender_email": "mallory@evil.example"}'})
    item_id = r.json()["item_id"]
    assert wait_for_item(client, item_id, robot)["outcome"] == "triage"
    assert _search(client, alice, word, 1)["total"] == 1, "triage is the shared queue"
    done = client.post(f"/api/v1/triage/{item_id}/resolve", headers=sue,
                       json={"action": "attach", "case_ref": "CM-2025-000002", "reason": "Sam's shed"})
    assert done.status_code == 200
    return item_id, dict(done.json())


def test_a_triaged_item_attached_to_a_team_case_leaves_other_teams_search(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    alice, sue = token(rt, "alice"), token(rt, "sue")
    _triaged_then_attached_to_claims(client, rt, "zebracorn")
    assert client.get("/api/v1/search", headers=alice, params={"q": "zebracorn"}).json()["total"] == 0, \
        "now in a claims case: not for the complaints team, in search included"
    hits = client.get("/api/v1/search", headers=sue, params={"q": "zebracorn"}).json()["hits"]
    assert [h["case_ref"] for h in hits] == ["CM-2025-000002"]


def test_only_an_integration_account_may_name_the_customer_in_metadata(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    robot, alice, sue = token(rt, "robot"), token(rt, "alice"), token(rt, "sue")
    claim = '{"customer_id": "%s", "case_ref": "%s", "trusted_by": "me", "uploaded_by": "someone"}'
    by_agent = client.post("/api/v1/items", headers=alice,  # alice's own team's case, and its customer
                           data={"channel": "file", "metadata": claim % ("C1", "CM-2025-000001")},
                           files={"file": ("a.txt", b"Invoice 7 for the repairs", "text/plain")}).json()["item_id"]
    by_robot = client.post("/api/v1/items", headers=robot,
                           data={"channel": "file", "metadata": claim % ("C2", "CM-2025-000002")},
                           files={"file": ("b.txt", b"Invoice 8 for the repairs", "text/plain")}).json()["item_id"]
    agent_view, robot_view = wait_for_item(client, by_agent, sue), wait_for_item(client, by_robot, sue)
    assert agent_view["outcome"] == "triage", "an agent typing a customer id does not make it agree"
    assert (robot_view["outcome"], robot_view["case_ref"]) == ("attached", "CM-2025-000002")
    assert agent_view["metadata"]["uploaded_by"] == "alice" and "trusted_by" not in agent_view["metadata"]


def test_search_trusts_the_store_over_a_stale_index(rt: Runtime) -> None:
    from dataclasses import replace

    from casestore.search.indexer import documents_for_index

    client = TestClient(create_app(rt))
    alice, sue = token(rt, "alice"), token(rt, "sue")
    item_id, done = _triaged_then_attached_to_claims(client, rt, "quokkafish")
    assert done["search_index"] == "updated"
    with rt.read_sessions() as session:  # as if that index update had failed: the old, public entry
        stale = [replace(d, case_ref=None, teams=(), restricted=False)
                 for d in documents_for_index(session, item_ids=[item_id])]
    rt.search_index.index(stale)
    found = client.get("/api/v1/search", headers=alice, params={"q": "quokkafish"}).json()
    assert found["total"] == 0 and found["hits"] == [], "the store says claims only"
    assert client.get("/api/v1/search", headers=sue, params={"q": "quokkafish"}).json()["total"] == 1
