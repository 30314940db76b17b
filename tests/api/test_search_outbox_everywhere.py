"""Issue 15.11, the rest of it: every change search must follow goes through the search outbox, so
a change made while the index is down reaches it by itself once it is back (no `casework
reindex`).  Covered here: a case closed over REST (a coarse status change of the work engine), a
reply queued over REST (its folder entry), and `casework import customers|cases` run as a user
runs them (a renamed customer, a case moved to another team).

The index is a real OpenSearch (osmem-server) cut off behind a TCP gate (new connections
refused, open ones cut) while the changes are made; the store is SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from osmem_server import OsmemServer

from api.app import create_app
from api.settings import OutboundSettings, SearchSettings
from api.wiring import Runtime
from casestore import cases
from casestore.search import outbox
from casestore.search.outbox import OutboxLoop
from casestore.search.port import SearchQuery, Viewer
from casestore.work.inbound import start_imported
from ingest.messages import ClassifiedItem, Decision, Part
from ingest.pipeline import FileStage
from tests.api.conftest import JANE_CASE, SAM_CASE, bearer, two_team_runtime
from tests.connectors.conftest import wait_until
from tests.e2e.test_cli_pipeline import run
from tests.tcp_gate import TcpGate

ADMIN = Viewer(role="admin")
COMPLAINTS = Viewer(role="agent", teams=("complaints",))


@pytest.fixture(scope="module")
def os_server() -> Iterator[OsmemServer]:
    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    yield server
    server.close()


@dataclass
class World:
    rt: Runtime
    gate: TcpGate
    env: dict[str, str]  # a CLI user's environment: the same store and index


@pytest.fixture
def world(tmp_path: Path, db_url: str, os_server: OsmemServer) -> Iterator[World]:
    host, port = os_server.url.removeprefix("http://").split(":")
    gate = TcpGate(host, int(port))
    gate.open()
    search_url = f"opensearch://127.0.0.1:{gate.port}/cw-everywhere-{uuid.uuid4().hex[:10]}"
    rt = two_team_runtime(tmp_path, db_url, search=SearchSettings(url=search_url),
                          outbound=OutboundSettings(from_address="Cases <cases@cases.example>"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update(CASEWORK_DATA_DIR=str(tmp_path / "data"), CASEWORK_DB__URL=db_url, CASEWORK_SEARCH__URL=search_url)
    try:
        yield World(rt, gate, env)
    finally:
        gate.shut()
        gate.open()
        rt.search_index.client.indices.delete(index=rt.search_index.name,  # type: ignore[attr-defined]
                                              ignore_unavailable=True)
        rt.close()
        gate.shut()


def _filed(ref: str, n: int) -> list[ClassifiedItem]:
    out: list[ClassifiedItem] = []
    for i in range(n):
        key = f"api:everywhere-{uuid.uuid4()}"
        out.append(ClassifiedItem(
            item_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)), channel="email",
            received_at=datetime(2025, 3, 1, 9, i, tzinfo=UTC), idempotency_key=key, blob_sha256="b" * 64,
            size=100, filename="m.eml", source="test",
            parts=[Part(index=0, kind="body", text=f"zanzibar parcel {i} for {ref}")],
            decision=Decision(outcome="attached", case_ref=ref, doc_type="letter", reason="test")))
    return out


def _hits(rt: Runtime, viewer: Viewer, **query: object) -> list[tuple[str | None, int]]:
    found = rt.search_index.search(SearchQuery(limit=100, facets=False, snippets=False, **query), viewer)  # type: ignore[arg-type]
    return sorted((h.case_ref, h.document_id) for h in found.hits)


def _pending(rt: Runtime) -> int:
    with rt.sessions() as session:
        return outbox.depth(session).pending


def test_changes_made_while_the_index_is_down_reach_it_when_it_is_back(world: World, tmp_path: Path) -> None:
    rt = world.rt
    setup = rt.work  # loaded (and stored) before the transaction
    with rt.sessions() as s, s.begin():  # Jane's complaint has its work (closing it is a work service)
        start_imported(s, case=cases.get_case(s, ref=JANE_CASE), setup=setup)
    FileStage(sessions=rt.sessions, search_index=rt.search_index).handle_batch(
        _filed(JANE_CASE, 2) + _filed(SAM_CASE, 1))
    assert _pending(rt) == 0
    jane_docs = _hits(rt, ADMIN, case_ref=JANE_CASE)
    sam_docs = _hits(rt, ADMIN, case_ref=SAM_CASE)
    assert len(jane_docs) == 2 and len(sam_docs) == 1
    assert _hits(rt, COMPLAINTS, text="zanzibar") == jane_docs  # Sam's claim is not theirs

    world.gate.shut()  # the index goes away
    client = TestClient(create_app(rt))
    alice, sue = bearer(rt, "alice"), bearer(rt, "sue")
    closed = client.post(f"/api/v1/cases/{JANE_CASE}/close", headers=sue,
                         json={"code": "withdrawn", "reason": "she withdrew"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    reply = client.post(f"/api/v1/cases/{JANE_CASE}/replies", headers=alice,
                        json={"subject": "Your parcel", "body": "The quokka courier found it."})
    assert reply.status_code == 201, reply.text
    assert reply.json()["search_index"].startswith("waiting")  # committed; search follows when it is back
    (tmp_path / "customers.csv").write_text("customer_id,name,email\nC2,Samuel Quill,sam@example.com\n")
    renamed = run(world.env, "import", "customers", str(tmp_path / "customers.csv"))
    assert "search is not updated yet" in renamed.stderr
    (tmp_path / "cases.csv").write_text("ref,customer_id,case_type,status,opened_at,subject,team\n"
                                        f"{SAM_CASE},C2,claim,open,,water damage,complaints\n")
    moved = run(world.env, "import", "cases", str(tmp_path / "cases.csv"))
    assert "search is not updated yet" in moved.stderr
    assert _pending(rt) >= 4  # the case, the reply, the renamed customer's case, the moved case

    world.gate.open()  # back: `casework serve`'s outbox loop catches up, nobody runs a reindex
    loop = OutboxLoop(rt.search_drainer, poll_s=0.05, grace_s=0.0)
    loop.start()
    try:
        wait_until(lambda: _pending(rt) == 0, timeout=60, what="the search outbox drained")
    finally:
        loop.close()
    [out] = _hits(rt, ADMIN, text="quokka")
    assert out[0] == JANE_CASE and out not in jane_docs
    assert _hits(rt, ADMIN, case_statuses=("closed",)) == sorted([*jane_docs, out])  # the reply is in the case
    assert _hits(rt, ADMIN, text="Quill") == sam_docs  # found by the customer's new name
    assert _hits(rt, COMPLAINTS, text="zanzibar") == sorted(jane_docs + sam_docs)  # moved to complaints
    assert len(_hits(rt, ADMIN)) == 4  # every document once, none twice
