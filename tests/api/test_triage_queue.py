"""Triage as a work queue: get-next hands triage items to the triage team with a lease, so two
people never work the same item; over HTTP, the command line and concurrently, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from api.wiring import Runtime
from casestore import triage_leases, users
from casestore.access import principal_of
from casestore.db import translate_errors
from casestore.errors import StoreUnavailable
from casestore.models import AuditEvent, Item, TriageClaim, utcnow
from tests.api.conftest import SAM_CASE, bearer
from tests.api.test_queue_routes import _cli

LEASE = timedelta(minutes=30)


def _items(rt: Runtime, n: int, *, candidates: list[str] | None = None) -> list[str]:
    ids = []
    with rt.sessions() as s, s.begin():
        for k in range(n):
            item_id = str(uuid.uuid4())
            s.add(Item(item_id=item_id, idempotency_key=f"test:{item_id}", channel="email",
                       received_at=utcnow() - timedelta(hours=n - k), sender="x@example.com", subject=f"item {k}",
                       outcome="triage", doc_type="letter",
                       decision={"reason": "no match", "candidates": candidates or []}))
            ids.append(item_id)
    return ids


@pytest.fixture
def people(two_teams: Runtime) -> Runtime:
    with two_teams.sessions() as s, s.begin():
        users.add_user(s, name="tina", role="agent", teams=["triage", "complaints"])
        users.add_user(s, name="tom", role="agent", teams=["triage", "claims"])
    return two_teams


def test_get_next_hands_triage_items_out_once_each_with_a_lease(people: Runtime) -> None:
    rt = people
    first, second = _items(rt, 2)
    theirs = _items(rt, 1, candidates=[SAM_CASE])[0]  # names a claims case: hidden from tina
    client = TestClient(create_app(rt))
    tina, tom, alice = bearer(rt, "tina"), bearer(rt, "tom"), bearer(rt, "alice")

    got = client.post("/api/v1/triage/next", headers=tina).json()
    assert got["item"]["item_id"] == first and got["lease_version"] == 1 and got["lease_expires_at"]
    assert client.post("/api/v1/triage/next", headers=tom).json()["item"]["item_id"] == second
    assert client.post("/api/v1/triage/next", headers=tina).json()["item"] is None  # theirs is not hers to see
    assert client.post("/api/v1/triage/next", headers=tom).json()["item"]["item_id"] == theirs
    refused = client.post("/api/v1/triage/next", headers=alice)
    assert refused.status_code == 403 and "triage" in refused.json()["detail"]

    taken = client.post(f"/api/v1/triage/{first}/resolve", headers=tom, json={"action": "noise"})
    assert taken.status_code == 409 and "held by tina" in taken.json()["detail"]
    assert client.post(f"/api/v1/triage/{first}/release", headers=tom).status_code == 409
    assert client.post(f"/api/v1/triage/{first}/resolve", headers=tina, json={"action": "noise"}).status_code == 200

    assert client.post(f"/api/v1/triage/{second}/release", headers=tom, json={"reason": "lunch"}).status_code == 204
    again = client.post("/api/v1/triage/next", headers=tina).json()
    assert again["item"]["item_id"] == second and again["lease_version"] == 2
    with rt.sessions() as s, s.begin():  # tina's lease runs out: the item is free again
        s.execute(update(TriageClaim).where(TriageClaim.item_id == second)
                  .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert client.post("/api/v1/triage/next", headers=tom).json()["item"]["item_id"] == second
    with rt.read_sessions() as s:
        actions = [(e.actor, e.action) for e in s.scalars(select(AuditEvent).where(AuditEvent.item_id == second)
                                                          .order_by(AuditEvent.id))]
    assert actions == [("tom", "triage.claimed"), ("tom", "triage.released"), ("tina", "triage.claimed"),
                       ("tom", "triage.claimed")]


def test_concurrent_triage_get_next_never_hands_out_an_item_twice(people: Runtime) -> None:
    rt = people
    ids = set(_items(rt, 120))
    start = threading.Barrier(4)

    def work(name: str) -> list[str]:
        got: list[str] = []
        start.wait()
        while True:
            try:
                with translate_errors(), rt.sessions() as s, s.begin():
                    viewer = principal_of(users.get_user(s, name=name))
                    claimed = triage_leases.next_item(s, viewer=viewer, team="triage", lease=LEASE, now=utcnow())
                    if claimed is None:
                        return got
                    got.append(claimed.item.item_id)
            except StoreUnavailable:  # a lock timeout under load: tried again
                continue

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, ["tina", "tom", "sue", "root"]))
    handed = [i for r in results for i in r]
    assert len(handed) == len(set(handed)) == len(ids) and set(handed) == ids
    assert sum(1 for r in results if r) > 1, ("the callers ran side by side", [len(r) for r in results])


def test_the_cli_takes_and_gives_back_triage_items(people: Runtime, db_url: str) -> None:
    rt = people
    item = _items(rt, 1)[0]
    data = rt.settings.data_dir
    got = json.loads(_cli(data, db_url, "triage", "next", "--as", "tina", "--json").stdout)
    assert got["item"]["item_id"] == item and got["item"]["lease_version"] == 1
    assert _cli(data, db_url, "triage", "next", "--as", "tom", check=False).returncode == 3  # nothing else waits
    refused = _cli(data, db_url, "triage", "release", item, "--as", "tom", check=False)
    assert refused.returncode != 0 and "you do not hold" in refused.stderr + refused.stdout
    _cli(data, db_url, "triage", "release", item, "--as", "tina")
    assert json.loads(_cli(data, db_url, "triage", "next", "--as", "tom", "--json").stdout)["item"]["item_id"] == item


def test_a_case_opened_from_triage_over_http_has_its_work(people: Runtime) -> None:
    """The route wires the file stage's work hooks: the new case is in a queue, not a case nobody works."""
    rt = people
    item_id = _items(rt, 1)[0]
    client = TestClient(create_app(rt))
    tina = bearer(rt, "tina")
    done = client.post(f"/api/v1/triage/{item_id}/resolve", headers=tina,
                       json={"action": "new_case", "case_type": "complaint", "reason": "a complaint"})
    assert done.status_code == 200 and done.json()["outcome"] == "new_case"
    folder = client.get(f"/api/v1/cases/{done.json()['case_ref']}", headers=tina).json()
    work = folder["work"]
    assert (work["case_type"], work["stage"]) == ("complaint", "intake")
    assert [(t["name"], t["state"]) for t in work["tasks"]] == [("acknowledge", "queued")]
