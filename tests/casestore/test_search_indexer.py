"""The indexer against a real store (SQLite and PostgreSQL) and a real Tantivy index: file-stage
hook, case changes, reindex resumed after a kill, and the legacy document import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from casestore import cases, customers, items
from casestore.models import AuditEvent, Document, Item
from casestore.search import legacy_import
from casestore.search.indexer import (
    documents_for_index,
    import_documents,
    index_items,
    reindex,
    update_case_in_index,
)
from casestore.search.port import IndexedDoc, SearchQuery, Viewer
from casestore.search.tantivy_index import TantivyIndex
from tests.casestore.factories import decision, documents, new_item

ADMIN = Viewer(role="admin")
ROOT = Path(__file__).resolve().parents[2]


def _seed_case(sessions: sessionmaker[Session], ref: str = "CM-2025-000001", team: str | None = "billing") -> None:
    with sessions() as session, session.begin():
        customers.upsert_customer(session, customer_id="C1", name="Jane Smith", email="jane@example.com")
        cases.upsert_case(session, ref=ref, customer_id="C1", case_type="billing", team=team)


def _file(sessions: sessionmaker[Session], n: int, *, ref: str | None = "CM-2025-000001", parts: int = 2) -> list[str]:
    ids: list[str] = []
    with sessions() as session, session.begin():
        for _ in range(n):
            item = new_item()
            items.file_item(session, item=item, documents=documents(parts), outcome="attached" if ref else "triage",
                            case_ref=ref, new_case=None, doc_type="letter", decision=decision(), actor="test")
            ids.append(item.item_id)
    return ids


def _store_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(Document.id))) or 0)


def _indexed_ids(index: TantivyIndex) -> list[int]:
    out: list[int] = []
    cursor = None
    while True:
        page = index.search(SearchQuery(limit=1000, sort="date", cursor=cursor, facets=False, snippets=False), ADMIN)
        out.extend(h.document_id for h in page.hits)
        cursor = page.next_cursor
        if cursor is None:
            return out


def test_index_items_and_case_changes(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _seed_case(sessions)
    filed = _file(sessions, 2)
    triage = _file(sessions, 1, ref=None, parts=1)
    index = TantivyIndex(tmp_path / "index")
    with sessions() as session:
        assert index_items(session, index, filed + triage) == 5
        docs = documents_for_index(session, item_ids=filed)
    assert {(d.case_ref, d.customer_name, d.teams, d.case_status) for d in docs} == {
        ("CM-2025-000001", "Jane Smith", ("billing",), "open")}
    agent = Viewer(role="agent", teams=("claims",))
    assert index.search(SearchQuery(text="boiler"), agent).total == 1  # the triage document only
    assert index.search(SearchQuery(text="jane"), Viewer(role="agent", teams=("billing",))).total == 4

    with sessions() as session, session.begin():
        cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="billing", status="closed",
                          team="claims")
    with sessions() as session:
        assert update_case_in_index(session, index, case_ref="CM-2025-000001") == 4
    assert index.search(SearchQuery(text="boiler"), agent).total == 5
    assert index.search(SearchQuery(case_statuses=("closed",)), ADMIN).total == 4
    with sessions() as session:  # a redelivered batch: indexing again writes no duplicates
        index_items(session, index, filed)
    assert index.search(SearchQuery(), ADMIN).total == 5


def test_reindex_rebuilds_from_the_store(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _seed_case(sessions)
    _file(sessions, 7)
    index = TantivyIndex(tmp_path / "index")
    with sessions() as session:
        index.index(documents_for_index(session, document_ids=[1, 2]))
        stale = documents_for_index(session, document_ids=[1])[0]
    index.index([type(stale)(**{**{f: getattr(stale, f) for f in stale.__slots__}, "document_id": 99_999})])
    seen: list[tuple[int, int]] = []
    report = reindex(sessions, index, batch=4, progress=lambda done, total: seen.append((done, total)),
                     checkpoint_path=tmp_path / "reindex.json")
    assert report.indexed == report.total == 14 and report.resumed_after is None
    assert seen[0] == (0, 14) and seen[-1] == (14, 14)
    assert sorted(_indexed_ids(index)) == sorted(range(1, 15))
    assert not (tmp_path / "reindex.json").exists()


_SLOW_REINDEX = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from casestore.db import make_engine, session_factory
    from casestore.search.indexer import reindex
    from casestore.search.tantivy_index import TantivyIndex

    sessions = session_factory(make_engine(sys.argv[1]))
    index = TantivyIndex(Path(sys.argv[2]), heap_bytes=20_000_000, threads=1)
    reindex(sessions, index, batch=5, checkpoint_path=Path(sys.argv[3]),
            progress=lambda done, total: time.sleep(0.3))
""")


def test_reindex_resumes_after_a_kill(db_url: str, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _seed_case(sessions)
    _file(sessions, 30)  # 60 documents, 12 batches
    checkpoint = tmp_path / "reindex.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_REINDEX, db_url, str(tmp_path / "index"), str(checkpoint)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if checkpoint.exists() and json.loads(checkpoint.read_text())["last_document_id"] >= 15:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "reindex exited"
            time.sleep(0.05)
        else:
            pytest.fail("the reindex subprocess made no progress in 60 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_at = json.loads(checkpoint.read_text())["last_document_id"]
    assert 15 <= killed_at < 60

    index = TantivyIndex(tmp_path / "index")
    report = reindex(sessions, index, batch=5, checkpoint_path=checkpoint)
    assert report.resumed_after == killed_at
    indexed = _indexed_ids(index)
    assert len(indexed) == len(set(indexed)) == _store_count(sessions) == 60
    assert index.search(SearchQuery(), ADMIN).total == 60


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _legacy(n: int, ref: str = "CM-2025-000001") -> dict[str, str]:
    return {"case_ref": ref, "title": f"legacy letter {n}", "text": f"old correspondence number {n} about rates",
            "channel": "scan", "doc_type": "letter", "received_at": f"2019-03-{n + 1:02d}T10:00:00Z"}


def test_import_documents_is_idempotent_and_reports_bad_lines(sessions: sessionmaker[Session],
                                                               tmp_path: Path) -> None:
    _seed_case(sessions)
    path = _jsonl(tmp_path / "legacy.jsonl", [_legacy(1), _legacy(2), "{not json", _legacy(3, ref="NOPE-1"),
                                              {**_legacy(4), "received_at": "yesterday"}, _legacy(5)])
    index = TantivyIndex(tmp_path / "index")
    report = import_documents(sessions, index, path, batch=2)
    assert (report.imported, report.duplicates, report.error_count, report.indexed) == (3, 0, 3, 3)
    assert sorted(e.line for e in report.errors) == [3, 4, 5]
    again = import_documents(sessions, index, path, batch=2)
    assert (again.imported, again.duplicates) == (0, 3)
    with sessions() as session:
        assert session.scalar(select(func.count(Item.item_id)).where(Item.source == "legacy:legacy.jsonl")) == 3
        folder = cases.case_folder(session, ref="CM-2025-000001")
    assert len(folder["documents"]) == 3
    hits = index.search(SearchQuery(text="correspondence", sort="date"), Viewer(role="agent", teams=("billing",)))
    assert hits.total == 3
    assert hits.hits[0].received_at == datetime(2019, 3, 6, 10, 0, tzinfo=UTC)


def test_import_documents_resumes_from_its_checkpoint(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _seed_case(sessions)
    path = _jsonl(tmp_path / "legacy.jsonl", [_legacy(n) for n in range(1, 10)])
    checkpoint = tmp_path / "import.json"
    index = TantivyIndex(tmp_path / "index")

    class Crash(Exception):
        pass

    def crash_after_first_batch(done: int, total: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        import_documents(sessions, index, path, batch=4, checkpoint_path=checkpoint, progress=crash_after_first_batch)
    assert json.loads(checkpoint.read_text())["line"] == 4
    report = import_documents(sessions, index, path, batch=4, checkpoint_path=checkpoint)
    assert report.resumed_at_line == 4
    assert report.imported + report.duplicates == 5  # lines 5-9: batch two may have been stored before the crash
    assert _store_count(sessions) == 9
    assert sorted(_indexed_ids(index)) == list(range(1, 10))
    assert not checkpoint.exists()


class _Recording(TantivyIndex):
    """A Tantivy index that also keeps every document handed to ``index``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.given: list[IndexedDoc] = []

    def index(self, docs: Sequence[IndexedDoc]) -> None:
        self.given.extend(docs)
        super().index(docs)


def test_import_documents_stores_and_indexes_what_the_store_holds(sessions: sessionmaker[Session],
                                                                 tmp_path: Path) -> None:
    """The bulk path writes the same rows the ORM would, and indexes exactly what a reindex would."""
    _seed_case(sessions)
    _seed_case(sessions, ref="CM-2025-000002", team=None)
    rows = [_legacy(1), _legacy(2, ref="CM-2025-000002"), {**_legacy(3), "title": "", "text": "nul\u0000byte"},
            {**_legacy(4), "received_at": "2019-03-05T12:00:00+02:00"}]
    path = _jsonl(tmp_path / "legacy.jsonl", rows)
    index = _Recording(tmp_path / "index")
    report = import_documents(sessions, index, path, batch=3)
    assert (report.imported, report.indexed, report.error_count) == (4, 4, 0)
    with sessions() as session:
        stored = documents_for_index(session, item_ids=[d.item_id for d in index.given])
        assert sorted(index.given, key=lambda d: d.document_id) == stored
        items = {i.meta["legacy_line"]: i for i in session.scalars(select(Item))}
        docs = {d.item_id: d for d in session.scalars(select(Document))}
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "documents.imported")).all()
    assert sorted(items) == [1, 2, 3, 4]
    first = items[1]
    assert first.item_id == str(uuid.uuid5(legacy_import.LEGACY_NAMESPACE, first.idempotency_key))
    assert (first.channel, first.doc_type, first.outcome, first.source, first.subject, first.size) == (
        "scan", "letter", "attached", "legacy:legacy.jsonl", "legacy letter 1", 0)
    assert first.received_at == datetime(2019, 3, 2, 10, 0, tzinfo=UTC)
    assert items[4].received_at == datetime(2019, 3, 5, 10, 0, tzinfo=UTC)
    assert first.meta == {"legacy_line": 1, "legacy_file": None}
    assert first.decision == {"reason": "imported from a legacy repository"}
    assert first.filed_at.tzinfo is not None and items[3].subject is None
    doc = docs[first.item_id]
    assert (doc.case_id, doc.part_index, doc.kind, doc.title, doc.fields, doc.error) == (
        first.case_id, 0, "legacy", "legacy letter 1", {}, None)
    assert docs[items[3].item_id].text == "nulbyte"
    # one audit event per case per batch: lines 1-3 are batch one (two cases), line 4 batch two
    assert sorted((e.case_id, e.details["count"]) for e in audit) == sorted(
        [(first.case_id, 2), (items[2].case_id, 1), (first.case_id, 1)])
    assert {e.details["source"] for e in audit} == {"legacy:legacy.jsonl"}


def test_legacy_item_id_is_uuid5() -> None:
    for n in range(2000):
        key = f"legacy:{n:064x}"
        assert legacy_import.legacy_item_id(key) == str(uuid.uuid5(legacy_import.LEGACY_NAMESPACE, key))


def test_import_documents_stops_at_a_store_failure_and_resumes(sessions: sessionmaker[Session], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _seed_case(sessions)
    path = _jsonl(tmp_path / "legacy.jsonl", [_legacy(n) for n in range(1, 12)])
    checkpoint = tmp_path / "import.json"
    index = TantivyIndex(tmp_path / "index")
    real = legacy_import._store_batch
    calls = 0

    def failing(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("store went away")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(legacy_import, "_store_batch", failing)
    with pytest.raises(RuntimeError, match="store went away"):
        import_documents(sessions, index, path, batch=3, checkpoint_path=checkpoint)
    assert json.loads(checkpoint.read_text())["line"] == 6  # batches one and two are indexed
    monkeypatch.setattr(legacy_import, "_store_batch", real)
    report = import_documents(sessions, index, path, batch=3, checkpoint_path=checkpoint)
    assert report.resumed_at_line == 6
    assert _store_count(sessions) == 11
    assert sorted(_indexed_ids(index)) == list(range(1, 12))


def _doc(document_id: int, text: str) -> IndexedDoc:
    return IndexedDoc(document_id=document_id, item_id=f"item-{document_id}", case_ref="CM-1", customer_id=None,
                      customer_name=None, title=f"doc {document_id}", text=text, channel="scan", doc_type="letter",
                      received_at=datetime(2024, 1, document_id, tzinfo=UTC), case_status="open")


def test_bulk_index_is_an_upsert_with_and_without_deletes(tmp_path: Path) -> None:
    """In bulk(), ids above the index's largest skip the delete; every other id is still replaced."""
    index = TantivyIndex(tmp_path / "index")
    index.index([_doc(1, "alpha"), _doc(2, "alpha")])
    with index.bulk():
        index.index([_doc(2, "bravo"), _doc(3, "bravo")])  # 2 replaces, 3 is new
        index.index([_doc(3, "charlie"), _doc(4, "charlie")])  # 3 was given in this bulk: replaced
    assert index.count() == 4
    texts = {w: index.search(SearchQuery(text=w), ADMIN).total for w in ("alpha", "bravo", "charlie")}
    assert texts == {"alpha": 1, "bravo": 1, "charlie": 2}
    reopened = TantivyIndex(tmp_path / "index")  # another writer later: reads the largest id from the index
    index.close()
    with reopened.bulk():
        reopened.index([_doc(4, "delta"), _doc(5, "delta")])
        reopened.index([_doc(6, "echo"), _doc(6, "foxtrot"), _doc(5, "foxtrot")])  # the same id twice in a call
    assert reopened.count() == 6
    assert reopened.search(SearchQuery(text="delta"), ADMIN).total == 1
    assert reopened.search(SearchQuery(text="echo"), ADMIN).total == 0
    assert sorted(_indexed_ids(reopened)) == [1, 2, 3, 4, 5, 6]


def test_import_documents_stores_a_line_repeated_in_a_batch_once(sessions: sessionmaker[Session],
                                                                 tmp_path: Path) -> None:
    _seed_case(sessions)
    path = _jsonl(tmp_path / "legacy.jsonl", [_legacy(1), _legacy(2), _legacy(1), _legacy(3), _legacy(2)])
    index = TantivyIndex(tmp_path / "index")
    report = import_documents(sessions, index, path, batch=4)  # line 1 twice in batch one, line 2 across batches
    assert (report.imported, report.duplicates) == (3, 2)
    assert _store_count(sessions) == 3
    assert sorted(_indexed_ids(index)) == [1, 2, 3]
