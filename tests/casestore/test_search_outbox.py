"""Issue 15.11: index updates that fail after the store's commit wait in the search outbox and
reach the index by themselves once it is back; never twice as separate hits.

The file stage runs for real (``FileStage.handle_batch``) on a real store (SQLite and
PostgreSQL) and a real index: Tantivy whose writer cannot be opened (another writer holds the
lock), and OpenSearch (osmem-server) cut off behind a TCP gate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from osmem_server import OsmemServer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from casestore import cases, customers
from casestore.models import Document, utcnow
from casestore.search import outbox
from casestore.search.indexer import reindex
from casestore.search.opensearch_index import OpenSearchIndex
from casestore.search.outbox import OutboxDrainer, OutboxLoop
from casestore.search.port import IndexedDoc, SearchIndex, SearchQuery, Viewer
from casestore.search.tantivy_index import TantivyIndex
from ingest.messages import ClassifiedItem, Decision, Part
from ingest.pipeline import LEFTOVER_AGE_S, FileStage
from tests.connectors.conftest import wait_until
from tests.tcp_gate import TcpGate

ADMIN = Viewer(role="admin")
REF = "CM-2025-000001"


class Outage:
    """An index the file stage writes to, and a way to take its backend away and bring it back."""

    def __init__(self, index: SearchIndex, down: object, up: object) -> None:
        self.index = index
        self._down, self._up = down, up

    def down(self) -> None:
        self._down()  # type: ignore[operator]

    def up(self) -> None:
        self._up()  # type: ignore[operator]


@pytest.fixture(params=["tantivy", "opensearch"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "tantivy":
        index = TantivyIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1, lock_timeout_s=0.2)
        holder = TantivyIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)  # another process's writer
        held = holder.bulk()
        yield Outage(index, down=held.__enter__, up=lambda: held.__exit__(None, None, None))
        index.close()
        holder.close()
        return
    server: OsmemServer = request.getfixturevalue("search_server")
    host, port = server.url.removeprefix("http://").split(":")
    gate = TcpGate(host, int(port))
    gate.open()
    os_index = OpenSearchIndex(gate.url, index=f"cw-outbox-{uuid.uuid4().hex[:10]}", timeout_s=3,
                               max_retries=0)
    yield Outage(os_index, down=gate.shut, up=gate.open)
    gate.shut()
    gate.open()
    os_index.client.indices.delete(index=os_index.name, ignore_unavailable=True)
    os_index.close()
    gate.shut()


def _classified(n: int, *, outcome: str = "attached") -> list[ClassifiedItem]:
    out: list[ClassifiedItem] = []
    for i in range(n):
        key = f"api:outbox-test-{uuid.uuid4()}"
        out.append(ClassifiedItem(
            item_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)), channel="email",
            received_at=datetime(2025, 3, 1, 9, i, tzinfo=UTC), idempotency_key=key, blob_sha256="b" * 64,
            size=100, filename="m.eml", source="test",
            parts=[Part(index=0, kind="body", text=f"zanzibar parcel {i} lost in transit")],
            decision=Decision(outcome=outcome, case_ref=REF if outcome == "attached" else None, doc_type="letter",
                              reason="test")))
    return out


def _seed(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        customers.upsert_customer(session, customer_id="C1", name="Jane Smith", email="jane@example.com")
        cases.upsert_case(session, ref=REF, customer_id="C1", case_type="billing", team="billing")


def _depth(sessions: sessionmaker[Session]) -> outbox.OutboxDepth:
    with sessions() as session:
        return outbox.depth(session)


def _hits(index: SearchIndex) -> list[int]:
    found = index.search(SearchQuery(text="zanzibar", limit=100, facets=False, snippets=False), ADMIN)
    return sorted(h.document_id for h in found.hits)


def test_filing_during_an_index_outage_is_indexed_when_it_returns(sessions: sessionmaker[Session],
                                                                  outage: Outage) -> None:
    _seed(sessions)
    stage = FileStage(sessions=sessions, search_index=outage.index)
    before = _classified(2)
    stage.handle_batch(before)  # the index is up: searchable at once, nothing left waiting
    assert len(_hits(outage.index)) == 2 and _depth(sessions).pending == 0

    outage.down()
    during = _classified(3)
    stage.handle_batch(during)  # filed (the store committed) although the index write failed
    with sessions() as session:
        assert session.scalar(select(func.count(Document.id))) == 5
    waiting = _depth(sessions)
    assert (waiting.pending, waiting.failing) == (3, 3)
    assert stage.drainer is not None and stage.drainer.paused()  # later batches do not wait on the index
    stage.handle_batch(_classified(1))
    assert _depth(sessions).pending == 4

    outage.up()
    loop = OutboxLoop(OutboxDrainer(sessions, outage.index), poll_s=0.05, grace_s=0.0)  # what `casework serve` runs
    loop.start()
    try:
        wait_until(lambda: _depth(sessions).pending == 0, timeout=30, what="the outbox drained")
    finally:
        loop.close()
    hits = _hits(outage.index)
    assert len(hits) == 6 == len(set(hits))  # every document, each once

    stage.handle_batch(during)  # redelivered: nothing new filed, the rows drain, no second hit
    assert _hits(outage.index) == hits and _depth(sessions).pending == 0


def test_rows_written_where_no_index_is_attached_are_drained_by_any_drainer(sessions: sessionmaker[Session],
                                                                    tmp_path: Path) -> None:
    _seed(sessions)
    index = TantivyIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    with sessions() as session, session.begin():
        rows = outbox.enqueue(session, case_refs=["CM-NOT-THERE"])  # reads as no documents: harmless
    stage = FileStage(sessions=sessions, search_index=None)
    stage.handle_batch(_classified(2))  # written to the outbox, no index attached to this stage
    drainer = OutboxDrainer(sessions, index)
    report = drainer.drain()
    assert (report.rows, report.documents, report.failed) == (3, 2, 0) and rows
    assert len(_hits(index)) == 2 and _depth(sessions).pending == 0
    index.close()


def test_reindex_takes_over_what_the_outbox_held(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _seed(sessions)
    FileStage(sessions=sessions, search_index=None).handle_batch(_classified(3))
    assert _depth(sessions).pending == 3
    index = TantivyIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    assert reindex(sessions, index).indexed == 3
    assert _depth(sessions).pending == 0 and len(_hits(index)) == 3
    index.close()


def test_enqueue_writes_one_row_per_distinct_item_and_case_on_either_store(sessions: sessionmaker[Session]) -> None:
    """PostgreSQL takes the rows as two arrays (one statement whatever the batch); SQLite as a
    VALUES list: the same rows either way, and the ids returned are exactly the rows written."""
    from casestore.search.models import SearchOutboxEntry

    items = [f"item-{n}" for n in range(700)] + ["item-3"]  # a duplicate, and more than one IN_CHUNK
    with sessions() as session, session.begin():
        ids = outbox.enqueue(session, item_ids=items, case_refs=["CM-1", "CM-2", "CM-1"])
        assert sorted(outbox.written_in(session)) == sorted(ids)
    with sessions() as session:
        rows = session.execute(select(SearchOutboxEntry.id, SearchOutboxEntry.item_id, SearchOutboxEntry.case_ref,
                                      SearchOutboxEntry.attempts, SearchOutboxEntry.created_at,
                                      SearchOutboxEntry.next_attempt_at)).all()
    assert sorted(r.id for r in rows) == sorted(ids) and len(ids) == 702
    assert sorted(r.item_id for r in rows if r.item_id) == sorted(set(items))
    assert sorted(r.case_ref for r in rows if r.case_ref) == ["CM-1", "CM-2"]
    assert {r.attempts for r in rows} == {0} and len({(r.created_at, r.next_attempt_at) for r in rows}) == 1
    assert all(r.created_at == r.next_attempt_at for r in rows)


class _CountingIndex(TantivyIndex):
    """A real Tantivy index that counts its writes (each ``index`` call is one commit)."""

    commits = 0

    def index(self, docs: Sequence[IndexedDoc]) -> None:
        if docs:
            self.commits += 1
        super().index(docs)


def test_a_deferring_file_stage_indexes_its_batches_in_one_commit_when_it_finishes(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Issue 15.10 (`casework ingest`): with ``index_every_s`` the batches' outbox rows wait, committed
    with their filings, and ``finish`` indexes them all at once: complete, each document once."""
    _seed(sessions)
    index = _CountingIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    stage = FileStage(sessions=sessions, search_index=index, index_every_s=3600)
    for _ in range(5):
        stage.handle_batch(_classified(1))  # one item at a time, as scans arrive
    assert index.commits == 0 and _hits(index) == [] and _depth(sessions).pending == 5
    stage.finish()
    assert index.commits == 1 and len(_hits(index)) == 5 and _depth(sessions).pending == 0
    stage.finish()  # nothing left: no commit
    assert index.commits == 1
    index.close()


def test_a_deferring_file_stage_indexes_at_most_every_index_every_s(sessions: sessionmaker[Session],
                                                                    tmp_path: Path) -> None:
    _seed(sessions)
    index = _CountingIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    stage = FileStage(sessions=sessions, search_index=index, index_every_s=0.2)
    stage.handle_batch(_classified(2))
    assert index.commits == 0
    time.sleep(0.25)
    stage.handle_batch(_classified(1))  # the interval is over: this batch and the ones before it
    assert index.commits == 1 and len(_hits(index)) == 3 and _depth(sessions).pending == 0
    index.close()


def test_rows_a_crashed_ingest_left_unindexed_are_indexed_by_the_next_ingest(sessions: sessionmaker[Session],
                                                                             tmp_path: Path) -> None:
    """A run that died between its filings' commit and its deferred index write (``finish`` never ran)
    leaves the rows in the outbox; the next run's file stage indexes them as it finishes, although it
    filed nothing itself (its items were filed already)."""
    _seed(sessions)
    index = _CountingIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    crashed = FileStage(sessions=sessions, search_index=index, index_every_s=3600)
    batch = _classified(3)
    crashed.handle_batch(batch)  # committed; the process dies here
    assert _depth(sessions).pending == 3 and _hits(index) == []
    from casestore.search.models import SearchOutboxEntry

    with sessions() as session, session.begin():  # the next run starts later than LEFTOVER_AGE_S
        session.execute(update(SearchOutboxEntry).values(created_at=utcnow() - timedelta(seconds=LEFTOVER_AGE_S + 1)))
    rerun = FileStage(sessions=sessions, search_index=index, index_every_s=3600)
    rerun.finish()
    assert len(_hits(index)) == 3 and _depth(sessions).pending == 0
    rerun.handle_batch(batch)  # redelivered too: no second hit
    rerun.finish()
    assert len(_hits(index)) == 3 == len(set(_hits(index)))
    index.close()
