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
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from casestore import cases, customers, items
from casestore.models import Document, Item
from casestore.search.indexer import (
    documents_for_index,
    import_documents,
    index_items,
    reindex,
    update_case_in_index,
)
from casestore.search.port import SearchQuery, Viewer
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
