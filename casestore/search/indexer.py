"""Keeping the search index in step with the case store.

Changes after a commit reach the index through the search outbox (``casestore.search.outbox``):
the file stage, triage, case status changes, outbound messages and imports write its rows in
their own transaction.  What is here writes to the index directly:

- ``index_items`` / ``update_case_in_index``: one direct write for these items or this case (no
  retry if it fails; product code uses the outbox instead; kept for tools and tests).
- ``reindex``: rebuild from the store in document id order, in batches (one index commit or
  bulk request per batch), resumable: the last committed document id goes to a checkpoint file
  after every batch, and a run that finds the file carries on after that id.  At the end it
  deletes the search outbox rows that were there when it started (it read what they name).  Each batch is
  read by its own short query (keyset pagination on the primary key), so memory stays at one
  batch and no read transaction is held open for the length of the rebuild.
- ``import_documents`` (``legacy_import``): a legacy repository from JSON Lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from casestore.cases import get_case
from casestore.models import Document
from casestore.search import outbox as search_outbox
from casestore.search.legacy_import import ImportReport, import_documents
from casestore.search.port import CaseUpdate, SearchIndex
from casestore.search.store_docs import Checkpoint, documents_for_index, documents_query, to_indexed

log = logging.getLogger(__name__)

__all__ = ["ImportReport", "ReindexReport", "documents_for_index", "import_documents", "index_items", "reindex",
           "update_case_in_index"]

Progress = Callable[[int, int], None]  # (done, total)
INDEX_CHUNK = 1000


def index_items(session: Session, index: SearchIndex, item_ids: Sequence[str]) -> int:
    """Index (or re-index) every document of these items; how many documents were written."""
    docs = documents_for_index(session, item_ids=item_ids)
    for start in range(0, len(docs), INDEX_CHUNK):
        index.index(docs[start:start + INDEX_CHUNK])
    return len(docs)


def update_case_in_index(session: Session, index: SearchIndex, *, case_ref: str) -> int:
    """Carry the case's status, team, restriction and customer to its indexed documents."""
    case = get_case(session, ref=case_ref)
    customer = case.customer
    return index.update_case(CaseUpdate(
        case_ref=case.ref, case_status=case.status, teams=(case.team,) if case.team else (),
        restricted=bool(case.restricted), customer_id=customer.customer_id if customer else None,
        customer_name=customer.name if customer else None,
    ))


@dataclass
class ReindexReport:
    indexed: int
    total: int
    resumed_after: int | None
    seconds: float


def _read_deferred(session: Session) -> None:
    """On SQLite, read without taking the write lock (the store's default is BEGIN IMMEDIATE)."""
    session.connection(execution_options={"sqlite_begin": "DEFERRED"})


def reindex(sessions: sessionmaker[Session], index: SearchIndex, *, batch: int = 1000,
            progress: Progress | None = None, checkpoint_path: Path | None = None) -> ReindexReport:
    """Rebuild the index from the store; resumes from ``checkpoint_path`` if a run was cut short.

    A fresh run (no checkpoint) empties the index first.  The checkpoint is removed at the end.
    """
    started = time.monotonic()
    checkpoint = Checkpoint(checkpoint_path)
    state = checkpoint.load()
    resumed_after = int(state["last_document_id"]) if state else None
    last_id = resumed_after or 0
    done = int(state.get("indexed", 0)) if state else 0
    with sessions() as session:
        _read_deferred(session)
        remaining = int(session.scalar(select(func.count(Document.id)).where(Document.id > last_id)) or 0)
        # outbox rows up to here: this rebuild reads what they name (a resumed run: those of its start)
        outbox_covered = int(state.get("outbox_last_id", 0)) if state else search_outbox.last_id(session)
    total = done + remaining
    if state is None:
        index.clear()
        checkpoint.save({"last_document_id": 0, "indexed": 0, "outbox_last_id": outbox_covered})
        log.info("reindex: %d documents to index", total)
    else:
        log.info("reindex: resuming after document %d (%d of %d done)", last_id, done, total)
    if progress:
        progress(done, total)
    with index.bulk():
        while True:
            with sessions() as session:
                _read_deferred(session)
                rows = session.execute(
                    documents_query().where(Document.id > last_id).order_by(Document.id).limit(batch)
                ).all()
            if not rows:
                break
            docs = [to_indexed(r) for r in rows]
            index.index(docs)
            last_id = docs[-1].document_id
            done += len(docs)
            checkpoint.save({"last_document_id": last_id, "indexed": done, "outbox_last_id": outbox_covered})
            if progress:
                progress(done, max(total, done))
    with sessions() as session, session.begin():
        search_outbox.discard_up_to(session, outbox_covered)
    checkpoint.remove()
    seconds = time.monotonic() - started
    log.info("reindex: %d documents in %.1fs", done, seconds)
    return ReindexReport(indexed=done, total=max(total, done), resumed_after=resumed_after, seconds=seconds)
