"""``casework import documents FILE.jsonl``: a legacy document repository into the store and index.

One JSON object per line: ``case_ref``, ``title``, ``text``, ``channel``, ``doc_type``,
``received_at`` (ISO 8601), optionally ``file`` (a path, relative to the JSON Lines file).
Each line becomes one item (outcome 'attached', one document) in the case ``case_ref``, which
must exist (import cases first).  The item id is uuid5 of ``legacy:<sha256 of the line>``, so
importing the same file again writes nothing new.

Lines are handled in batches: the store rows of a batch in one transaction (bulk inserts and one
audit event per case), then the batch's documents are indexed in one bulk write, then the
checkpoint (the byte offset after the batch) is saved.  A run that finds the checkpoint
continues from there; a batch whose store commit happened but whose indexing did not is
indexed again on resume, because its items are indexed whether new or not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from casestore.errors import CaseStoreError, InvalidInput
from casestore.importer import RowError
from casestore.models import AuditEvent, Case, Document, Item, utcnow
from casestore.search.port import SearchIndex
from casestore.search.store_docs import Checkpoint, chunks, documents_for_index
from casestore.validation import no_nul, parse_datetime, text_or_none

log = logging.getLogger(__name__)

LEGACY_NAMESPACE = uuid.UUID("6f1c8f62-0d55-4c1e-9a53-1c5e0f9b7a10")
MAX_ERRORS_KEPT = 1000

PutFile = Callable[[Path], tuple[str, int]]  # path -> (sha256, size) once stored in the blob store
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


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


@dataclass(frozen=True)
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


def _required(obj: dict[str, Any], name: str, max_len: int) -> str:
    value = obj.get(name)
    cleaned = text_or_none(str(value)) if value is not None else None
    if cleaned is None:
        raise InvalidInput(f"{name} is required")
    if len(cleaned) > max_len:
        raise InvalidInput(f"{name} is longer than {max_len} characters")
    return cleaned


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
        number=number, item_id=str(uuid.uuid5(LEGACY_NAMESPACE, f"legacy:{digest}")), key=f"legacy:{digest}",
        case_ref=_required(obj, "case_ref", 64), title=no_nul(str(obj.get("title") or "")),
        text=no_nul(str(obj.get("text") or "")), channel=_required(obj, "channel", 20),
        doc_type=_required(obj, "doc_type", 100), received_at=parse_datetime(_required(obj, "received_at", 64)),
        file=file, blob_sha256=sha, size=size,
    )


def _store_batch(session: Session, lines: Sequence[_Line], source: str, report: ImportReport) -> list[str]:
    """Write the batch's new items and documents; the item ids that are in the store afterwards."""
    ids = [ln.item_id for ln in lines]
    existing: set[str] = set()
    for chunk in chunks(ids):
        existing.update(session.scalars(select(Item.item_id).where(Item.item_id.in_(chunk))))
    cases: dict[str, int] = {}
    for chunk in chunks([ln.case_ref for ln in lines]):
        cases.update({ref: case_id for ref, case_id in session.execute(
            select(Case.ref, Case.id).where(Case.ref.in_(chunk)))})
    now = utcnow()
    items: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    per_case: dict[int, int] = {}
    stored: list[str] = []
    for ln in lines:
        if ln.item_id in existing:
            report.duplicates += 1
            stored.append(ln.item_id)
            continue
        case_id = cases.get(ln.case_ref)
        if case_id is None:
            _error(report, ln.number, f"no case {ln.case_ref!r}; import cases first (casework import cases)")
            continue
        existing.add(ln.item_id)  # the same line twice in one file
        filename = Path(ln.file).name if ln.file else None
        items.append({
            "item_id": ln.item_id, "idempotency_key": ln.key, "channel": ln.channel, "received_at": ln.received_at,
            "source": source, "filename": filename, "blob_sha256": ln.blob_sha256, "content_type": None,
            "size": ln.size, "meta": {"legacy_line": ln.number, "legacy_file": ln.file}, "sender": None,
            "subject": ln.title or None, "outcome": "attached", "case_id": case_id, "doc_type": ln.doc_type,
            "decision": {"reason": "imported from a legacy repository"}, "filed_at": now,
        })
        docs.append({
            "item_id": ln.item_id, "case_id": case_id, "part_index": 0, "kind": "legacy", "title": ln.title,
            "filename": filename, "content_type": None, "blob_sha256": ln.blob_sha256, "text": ln.text,
            "fields": {}, "error": None, "created_at": now,
        })
        per_case[case_id] = per_case.get(case_id, 0) + 1
        stored.append(ln.item_id)
    if items:
        session.execute(insert(Item), items)
        session.execute(insert(Document), docs)
        session.add_all(
            AuditEvent(at=now, actor="import", action="documents.imported", case_id=case_id,
                       reason="imported from a legacy repository", details={"source": source, "count": n})
            for case_id, n in per_case.items()
        )
        session.flush()
        report.imported += len(items)
    return stored


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


def _finish(pending: tuple[Future[None], dict[str, Any]] | None, checkpoint: Checkpoint,
            progress: Progress | None, total: int) -> None:
    """Wait for a batch's index write, then record that the batch is done."""
    if pending is None:
        return
    future, state = pending
    future.result()
    checkpoint.save(state)
    if progress:
        progress(int(state["offset"]), total)


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
    total = path.stat().st_size
    source = f"legacy:{path.name}"
    with path.open("rb") as fh, index.bulk(), ThreadPoolExecutor(1, thread_name_prefix="import-index") as pool:
        fh.seek(offset)
        pending: tuple[Future[None], dict[str, Any]] | None = None
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
            with sessions() as session:
                with session.begin():
                    stored = _store_batch(session, parsed, source, report)
                docs = documents_for_index(session, item_ids=stored)
            # index this batch while the next one is read and stored; checkpoint in order
            _finish(pending, checkpoint, progress, total)
            pending = (pool.submit(index.index, docs),
                       {"file": str(path.resolve()), "offset": fh.tell(), "line": line_no})
            report.indexed += len(docs)
        _finish(pending, checkpoint, progress, total)
    checkpoint.remove()
    report.seconds = time.monotonic() - started
    log.info("import documents: %d imported, %d already there, %d rejected in %.1fs",
             report.imported, report.duplicates, report.error_count, report.seconds)
    return report
