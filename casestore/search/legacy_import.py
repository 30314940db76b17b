"""``casework import documents FILE.jsonl``: a legacy document repository into the store and index.

One JSON object per line: ``case_ref``, ``title``, ``text``, ``channel``, ``doc_type``,
``received_at`` (ISO 8601), optionally ``file`` (a path, relative to the JSON Lines file).
Each line becomes one item (outcome 'attached', one document) in the case ``case_ref``, which
must exist (import cases first).  The item id is uuid5 of ``legacy:<sha256 of the line>``, so
importing the same file again writes nothing new.

Lines are handled in batches: the store rows of a batch in one transaction (bulk inserts through
the driver's executemany and one audit event per case), then the batch's documents are indexed
in one bulk write, then the checkpoint (the byte offset after the batch) is saved.  Parsing,
storing and indexing run as a pipeline on three threads (see ``_Pipeline``).  A run that finds
the checkpoint continues from there; a batch whose store commit happened but whose indexing did
not is indexed again on resume, because its items are indexed whether new or not.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from casestore.errors import CaseStoreError, InvalidInput
from casestore.importer import RowError
from casestore.models import AuditEvent, Case, Customer, Document, Item, utcnow
from casestore.search.bulk_rows import BulkInsert
from casestore.search.port import MAX_TEXT_CHARS, IndexedDoc, SearchIndex
from casestore.search.store_docs import Checkpoint, chunks, documents_for_index
from casestore.validation import no_nul, parse_datetime, text_or_none

log = logging.getLogger(__name__)

LEGACY_NAMESPACE = uuid.UUID("6f1c8f62-0d55-4c1e-9a53-1c5e0f9b7a10")
MAX_ERRORS_KEPT = 1000
# SQLite page cache of the import's connection while it runs (KiB; the default is 2 MB).  The
# items and documents tables have indexes on random keys (item id, idempotency key); with a
# small cache every row inserted at a million rows reads and spills pages.
SQLITE_IMPORT_CACHE_KIB = 256 * 1024

READ_BUFFER = 1 << 20
PutFile = Callable[[Path], tuple[str, int]]  # path -> (sha256, size) once stored in the blob store
Progress = Callable[[int, int], None]  # (bytes done, bytes total)

_ITEM_COLUMNS = ("item_id", "idempotency_key", "channel", "received_at", "source", "filename", "blob_sha256",
                 "content_type", "size", "metadata", "sender", "subject", "outcome", "case_id", "doc_type",
                 "decision", "filed_at", "direction")
_DOCUMENT_COLUMNS = ("item_id", "case_id", "part_index", "kind", "title", "filename", "content_type",
                     "blob_sha256", "text", "fields", "error", "created_at")
_AUDIT_COLUMNS = ("at", "actor", "action", "case_id", "item_id", "reason", "details")
_REASON = "imported from a legacy repository"


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    indexed: int = 0
    lines: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    seconds: float = 0.0
    resumed_at_line: int | None = None


@dataclass(slots=True)
class _Line:
    number: int
    item_id: str
    key: str
    case_ref: str
    title: str
    text: str
    channel: str
    doc_type: str
    received_at: datetime
    file: str | None
    blob_sha256: str | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class _CaseInfo:
    id: int
    ref: str
    status: str
    teams: tuple[str, ...]
    restricted: bool
    customer_id: str | None
    customer_name: str | None


def _required(obj: dict[str, Any], name: str, max_len: int) -> str:
    value = obj.get(name)
    cleaned = text_or_none(str(value)) if value is not None else None
    if cleaned is None:
        raise InvalidInput(f"{name} is required")
    if len(cleaned) > max_len:
        raise InvalidInput(f"{name} is longer than {max_len} characters")
    return cleaned


_NAMESPACE_BYTES = LEGACY_NAMESPACE.bytes


def legacy_item_id(key: str) -> str:
    """``str(uuid.uuid5(LEGACY_NAMESPACE, key))``, without building ``UUID`` objects (a million times)."""
    h = hashlib.sha1(_NAMESPACE_BYTES + key.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def parse_line(number: int, raw: bytes, base_dir: Path, put_file: PutFile | None) -> _Line:
    digest = hashlib.sha256(raw.strip()).hexdigest()
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"not a JSON object ({e.__class__.__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise InvalidInput("not a JSON object")
    file = text_or_none(str(obj["file"])) if obj.get("file") else None
    sha, size = None, 0
    if file and put_file is not None:
        path = Path(file) if Path(file).is_absolute() else base_dir / file
        if not path.is_file():
            raise InvalidInput(f"file {file} does not exist")
        sha, size = put_file(path)
    return _Line(
        number=number, item_id=legacy_item_id(f"legacy:{digest}"), key=f"legacy:{digest}",
        case_ref=_required(obj, "case_ref", 64), title=no_nul(str(obj.get("title") or "")),
        text=no_nul(str(obj.get("text") or "")), channel=_required(obj, "channel", 20),
        doc_type=_required(obj, "doc_type", 100), received_at=parse_datetime(_required(obj, "received_at", 64)),
        file=file, blob_sha256=sha, size=size,
    )


class _Inserts:
    """The three bulk INSERTs of an import, compiled once for the store's dialect."""

    def __init__(self, conn: Connection) -> None:
        self.items = BulkInsert(conn, Item.__table__, _ITEM_COLUMNS)  # type: ignore[arg-type]
        self.documents = BulkInsert(conn, Document.__table__, _DOCUMENT_COLUMNS)  # type: ignore[arg-type]
        self.audit = BulkInsert(conn, AuditEvent.__table__, _AUDIT_COLUMNS)  # type: ignore[arg-type]


def _cases(conn: Connection, refs: Sequence[str]) -> dict[str, _CaseInfo]:
    out: dict[str, _CaseInfo] = {}
    for chunk in chunks(refs):
        rows = conn.execute(
            select(Case.id, Case.ref, Case.status, Case.team, Case.restricted, Customer.customer_id, Customer.name)
            .outerjoin(Customer, Case.customer_id == Customer.id).where(Case.ref.in_(chunk)))
        for case_id, ref, status, team, restricted, customer_id, name in rows:
            out[ref] = _CaseInfo(id=case_id, ref=ref, status=status, teams=(team,) if team else (),
                                 restricted=bool(restricted), customer_id=customer_id, customer_name=name)
    return out


def _new_document_ids(conn: Connection, after: int, item_ids: Sequence[str]) -> dict[str, int]:
    """The ids of the documents just inserted for ``item_ids`` (one per item, part 0).

    Ids are handed out above the largest id seen before the insert (SQLite's rowid, a
    PostgreSQL sequence), so one range read finds them; rows other writers added meanwhile are
    skipped, and anything not found (ids from elsewhere) is looked up by item id.
    """
    wanted = set(item_ids)
    found: dict[str, int] = {}
    for doc_id, item_id in conn.execute(select(Document.id, Document.item_id).where(Document.id > after)):
        if item_id in wanted:
            found[item_id] = doc_id
    missing = [i for i in item_ids if i not in found]
    for chunk in chunks(missing):
        found.update({item_id: doc_id for doc_id, item_id in conn.execute(
            select(Document.id, Document.item_id).where(Document.item_id.in_(chunk), Document.part_index == 0))})
    return found


def _store_batch(conn: Connection, inserts: _Inserts, lines: Sequence[_Line], source: str,
                 report: ImportReport) -> tuple[list[IndexedDoc], list[str]]:
    """Write the batch's new items and documents.

    Returns the new documents as the index takes them (built from the lines and their cases:
    nothing is read back but the new ids), and the item ids that were in the store already
    (their documents are indexed again from the store, so a re-run repairs the index).
    """
    existing: set[str] = set()
    for chunk in chunks([ln.item_id for ln in lines]):
        existing.update(conn.scalars(select(Item.item_id).where(Item.item_id.in_(chunk))))
    cases = _cases(conn, [ln.case_ref for ln in lines])
    now = utcnow()
    it, dc = inserts.items, inserts.documents
    source_v, now_item = it.value("source", source), it.value("filed_at", now)
    decision = it.value("decision", {"reason": _REASON})
    now_doc, no_fields = dc.value("created_at", now), dc.value("fields", {})
    received, meta = it.processor("received_at"), it.processor("metadata")
    item_rows: list[tuple[Any, ...]] = []
    doc_rows: list[tuple[Any, ...]] = []
    new: list[tuple[_Line, _CaseInfo]] = []
    already: dict[str, None] = {}
    added: set[str] = set()
    per_case: dict[int, int] = {}
    for ln in lines:
        if ln.item_id in existing:
            report.duplicates += 1
            if ln.item_id not in added:  # stored by an earlier batch or run: index it again
                already[ln.item_id] = None
            continue
        case = cases.get(ln.case_ref)
        if case is None:
            _error(report, ln.number, f"no case {ln.case_ref!r}; import cases first (casework import cases)")
            continue
        existing.add(ln.item_id)  # the same line twice in one batch: stored once, counted as a duplicate
        added.add(ln.item_id)
        filename = Path(ln.file).name if ln.file else None
        item_rows.append((
            ln.item_id, ln.key, ln.channel, received(ln.received_at), source_v, filename, ln.blob_sha256, None,
            ln.size, meta({"legacy_line": ln.number, "legacy_file": ln.file}), None, ln.title or None,
            "attached", case.id, ln.doc_type, decision, now_item, "in",
        ))
        doc_rows.append((ln.item_id, case.id, 0, "legacy", ln.title, filename, None, ln.blob_sha256, ln.text,
                         no_fields, None, now_doc))
        per_case[case.id] = per_case.get(case.id, 0) + 1
        new.append((ln, case))
    if not new:
        return [], list(already)
    before = int(conn.scalar(select(func.max(Document.id))) or 0)
    inserts.items.execute(conn, item_rows)
    inserts.documents.execute(conn, doc_rows)
    au = inserts.audit
    details = au.processor("details")
    au_at, au_reason = au.value("at", now), au.value("reason", _REASON)
    inserts.audit.execute(conn, [
        (au_at, "import", "documents.imported", case_id, None, au_reason, details({"source": source, "count": n}))
        for case_id, n in per_case.items()
    ])
    ids = _new_document_ids(conn, before, [ln.item_id for ln, _ in new])
    report.imported += len(new)
    docs = [
        IndexedDoc(document_id=ids[ln.item_id], item_id=ln.item_id, case_ref=case.ref,
                   customer_id=case.customer_id, customer_name=case.customer_name, title=ln.title,
                   text=ln.text[:MAX_TEXT_CHARS], channel=ln.channel, doc_type=ln.doc_type,
                   received_at=ln.received_at, case_status=case.status, teams=case.teams,
                   restricted=case.restricted)
        for ln, case in new
    ]
    return docs, list(already)


def _set_sqlite_cache(conn: Connection, kib_or_pages: int) -> None:
    conn.exec_driver_sql(f"PRAGMA cache_size = {int(kib_or_pages)}")


def _grow_sqlite_cache(conn: Connection, saved: int | None) -> int | None:
    """On SQLite, the import's larger page cache (``SQLITE_IMPORT_CACHE_KIB``); the setting to restore."""
    if conn.dialect.name != "sqlite":
        return None
    current = int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or 0)
    if current != -SQLITE_IMPORT_CACHE_KIB:
        _set_sqlite_cache(conn, -SQLITE_IMPORT_CACHE_KIB)
        saved = current if saved is None else saved
    return saved


def _error(report: ImportReport, line: int, reason: str) -> None:
    report.error_count += 1
    if len(report.errors) < MAX_ERRORS_KEPT:
        report.errors.append(RowError(line=line, reason=reason))


def _read_batch(fh: BinaryIO, line_no: int, batch: int) -> tuple[list[tuple[int, bytes]], int]:
    out: list[tuple[int, bytes]] = []
    while len(out) < batch:
        raw = fh.readline()
        if not raw:
            break
        line_no += 1
        if raw.strip():
            out.append((line_no, raw))
    return out, line_no


@dataclass
class _Stored:
    """One batch after its store transaction: its documents for the index, its own counts."""

    docs: list[IndexedDoc]
    report: ImportReport


def _merge(into: ImportReport, part: ImportReport) -> None:
    into.imported += part.imported
    into.duplicates += part.duplicates
    into.error_count += part.error_count
    into.errors.extend(part.errors[:max(0, MAX_ERRORS_KEPT - len(into.errors))])


class _Pipeline:
    """Parse (caller's thread) -> store (one thread) -> index (one thread), batches in file order.

    The stages overlap: while batch N is indexed, N+1 is written to the store and N+2 parsed.
    SQLite, psycopg and Tantivy do their work without the GIL, so the stages use separate cores.
    The checkpoint of a batch is saved once its index write returned, in order; at most
    ``STORE_AHEAD`` parsed batches wait for the store, so memory stays at a few batches.
    """

    STORE_AHEAD = 2

    def __init__(self, store: Callable[[list[_Line]], _Stored], index: SearchIndex, checkpoint: Checkpoint,
                 report: ImportReport, progress: Progress | None, total: int) -> None:
        self.store, self.index, self.checkpoint = store, index, checkpoint
        self.report, self.progress, self.total = report, progress, total
        self.store_pool = ThreadPoolExecutor(1, thread_name_prefix="import-store")
        self.index_pool = ThreadPoolExecutor(1, thread_name_prefix="import-index")
        self.storing: deque[tuple[Future[_Stored], dict[str, Any]]] = deque()
        self.indexing: tuple[Future[None], dict[str, Any]] | None = None

    def submit(self, lines: list[_Line], state: dict[str, Any]) -> None:
        self.storing.append((self.store_pool.submit(self.store, lines), state))
        # hand stored batches on without waiting, unless too many are parsed ahead of the store
        while self.storing and (len(self.storing) > self.STORE_AHEAD or (
                self.storing[0][0].done() and (self.indexing is None or self.indexing[0].done()))):
            self._stored()

    def _stored(self) -> None:
        """Hand the oldest stored batch to the index (after the previous index write is checkpointed)."""
        future, state = self.storing.popleft()
        self._indexed()  # first the batch before: its checkpoint stands even if this one failed
        stored = future.result()
        _merge(self.report, stored.report)
        self.indexing = (self.index_pool.submit(self.index.index, stored.docs), state)
        self.report.indexed += len(stored.docs)

    def _indexed(self) -> None:
        """Wait for the index write in flight, then record that its batch is done."""
        if self.indexing is None:
            return
        future, state = self.indexing
        self.indexing = None
        future.result()
        self.checkpoint.save(state)
        if self.progress:
            self.progress(int(state["offset"]), self.total)

    def finish(self) -> None:
        while self.storing:
            self._stored()
        self._indexed()

    def close(self, failed: bool) -> None:
        """Stop the threads; after a failure, batches not started yet are dropped (resume redoes them)."""
        self.store_pool.shutdown(wait=True, cancel_futures=failed)
        self.index_pool.shutdown(wait=True, cancel_futures=failed)


def import_documents(sessions: sessionmaker[Session], index: SearchIndex, path: Path, *, batch: int = 1000,
                     progress: Progress | None = None, checkpoint_path: Path | None = None,
                     put_file: PutFile | None = None) -> ImportReport:
    """Import (or resume importing) a JSON Lines legacy repository; see the module docstring."""
    started = time.monotonic()
    report = ImportReport()
    checkpoint = Checkpoint(checkpoint_path)
    state = checkpoint.load()
    if state is not None and state.get("file") != str(path.resolve()):
        state = None  # a checkpoint of another file
    offset, line_no = (int(state["offset"]), int(state["line"])) if state else (0, 0)
    if state:
        report.resumed_at_line = line_no
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived rows and no cycles: the cycle collector only costs time here
    try:
        _import(sessions, index, path, report, checkpoint, offset, line_no, batch, progress, put_file)
    finally:
        if gc_was_enabled:
            gc.enable()
    checkpoint.remove()
    report.seconds = time.monotonic() - started
    log.info("import documents: %d imported, %d already there, %d rejected in %.1fs",
             report.imported, report.duplicates, report.error_count, report.seconds)
    return report


class _Store:
    """The store stage: one transaction per batch, on the store thread's own session."""

    def __init__(self, sessions: sessionmaker[Session], source: str) -> None:
        self.sessions, self.source = sessions, source
        self.inserts: _Inserts | None = None
        self.saved_cache: int | None = None
        self.failed = False

    def __call__(self, lines: list[_Line]) -> _Stored:
        if self.failed:  # batches queued behind a failed one are left for the resume
            raise CaseStoreError("an earlier batch of this import failed")
        try:
            return self._store(lines)
        except BaseException:
            self.failed = True
            raise

    def _store(self, lines: list[_Line]) -> _Stored:
        report = ImportReport()
        with self.sessions() as session, session.begin():
            conn = session.connection()
            if self.inserts is None:
                self.inserts = _Inserts(conn)
            self.saved_cache = _grow_sqlite_cache(conn, self.saved_cache)
            docs, already = _store_batch(conn, self.inserts, lines, self.source, report)
            # lines stored before (an earlier run, or before a crash): indexed again from the store
            docs.extend(documents_for_index(session, item_ids=already))
        return _Stored(docs=docs, report=report)

    def restore_cache(self) -> None:
        if self.saved_cache is not None:
            with self.sessions() as session, session.begin():
                _set_sqlite_cache(session.connection(), self.saved_cache)


def _import(sessions: sessionmaker[Session], index: SearchIndex, path: Path, report: ImportReport,
            checkpoint: Checkpoint, offset: int, line_no: int, batch: int, progress: Progress | None,
            put_file: PutFile | None) -> None:
    store = _Store(sessions, f"legacy:{path.name}")
    resolved = str(path.resolve())
    with path.open("rb", buffering=READ_BUFFER) as fh, index.bulk():
        pipeline = _Pipeline(store, index, checkpoint, report, progress, path.stat().st_size)
        failed = True
        try:
            fh.seek(offset)
            while True:
                raw_lines, line_no = _read_batch(fh, line_no, batch)
                if not raw_lines:
                    break
                parsed: list[_Line] = []
                for number, raw in raw_lines:
                    try:
                        parsed.append(parse_line(number, raw, path.parent, put_file))
                    except CaseStoreError as e:
                        _error(report, number, str(e))
                report.lines += len(raw_lines)
                pipeline.submit(parsed, {"file": resolved, "offset": fh.tell(), "line": line_no})
            pipeline.finish()
            failed = False
        finally:
            pipeline.close(failed)
            store.restore_cache()
