"""The search outbox: index updates that wait in the store until the index has taken them in.

A change to what the index should hold (an item filed, a case whose status, team or customer
changed) writes an outbox row (``enqueue``) in the transaction that makes the change, so the
row exists exactly when the change does.  ``OutboxDrainer.drain`` then reads due rows, reads
their documents from the store (the store is the truth: a row says *what* to refresh, never
the values), writes them to the index and deletes the rows.

Rows are written by: the file stage (filed items, cases a reply reopened or moved), triage
resolution, the work engine whenever a case's coarse status changes (``Run.set_coarse_status``:
routes, web pages, the work CLI), the outbound queue (a reply's folder entry, from an agent or a
task), and ``casework import customers|cases`` (cases whose team, status or customer's name
changed).  Nothing else writes to the index but ``casework reindex`` and the legacy document
import (``casework import documents``, resumable from its own checkpoint).

- The file stage drains the rows of its batch right after its commit (search sees a filed item
  at once, as before), and then up to one batch of rows left over from earlier failures.  In
  `casework ingest` it drains at most every few seconds (``FileStage.index_every_s``) and the
  rest when the command ends, before it returns: one index commit for many items filed one at a time.
- ``casework serve`` runs ``OutboxLoop``, a thread that drains rows older than ``grace_s``
  (rows that the stage that wrote them did not get indexed: the backend was down, the process
  died between its commit and the index write).
- ``casework reindex`` stays the manual repair; a finished reindex deletes the rows that were
  there when it started.

Failures: when the index write fails, the rows stay, with ``attempts`` + 1, ``last_error`` and
``next_attempt_at`` pushed back (exponential backoff up to ``backoff_max_s``), and the drainer
pauses until then, so a backend that is down costs one failed attempt per backoff period, not
one per batch.  A refusal that is not an outage (``retryable`` false: the backend rejected a
document) is retried row by row, so one bad document does not hold back the others.

Twice is harmless: every index write is an upsert by document id, so a row drained by two
drainers at once (the file stage and the serve loop), or a row whose delete was lost, writes the
same documents again and never a second copy.  The limit: two drainers racing on the same
item could write an older read of it after a newer one; the serve loop's grace period keeps it
away from the rows a file stage is still draining, and the search route checks visibility
against the store anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ARRAY, Integer, String, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import translate_errors
from casestore.errors import CaseStoreError
from casestore.models import Case, Customer, utcnow
from casestore.rounds import exponential_backoff, repeat_rounds
from casestore.search.models import SearchOutboxEntry
from casestore.search.port import SearchIndex
from casestore.search.store_docs import IN_CHUNK, documents_for_index

log = logging.getLogger(__name__)

INDEX_CHUNK = 1000
MAX_ERROR_CHARS = 2000


_WRITTEN = "search_outbox_ids"  # session.info key: the rows this session wrote (``written_in``)


def enqueue(session: Session, *, item_ids: Sequence[str] = (), case_refs: Sequence[str] = (),
            customer_ids: Sequence[str] = ()) -> list[int]:
    """Outbox rows for these items, these cases and every case of these customers (CRM ids: after
    a rename, search finds the documents by the new name), in the caller's transaction; their ids.
    The ids are also kept for ``written_in``, so a caller that did not write them itself (a work
    service, the outbound queue) can drain them after its commit."""
    if customer_ids:
        case_refs = [*case_refs, *_case_refs_of_customers(session, customer_ids)]
    now = utcnow()
    rows = [{"item_id": i, "case_ref": None, "created_at": now, "next_attempt_at": now, "attempts": 0}
            for i in dict.fromkeys(item_ids)]
    rows += [{"item_id": None, "case_ref": r, "created_at": now, "next_attempt_at": now, "attempts": 0}
             for r in dict.fromkeys(case_refs)]
    if not rows:
        return []
    ids: list[int] = []
    if session.get_bind().dialect.name == "postgresql":
        ids = _insert_unnest(session, rows, now)
        session.info.setdefault(_WRITTEN, []).extend(ids)
        return ids
    for start in range(0, len(rows), IN_CHUNK):
        result = session.execute(insert(SearchOutboxEntry).returning(SearchOutboxEntry.id),
                                 rows[start:start + IN_CHUNK])
        ids.extend(int(i) for i in result.scalars())
    session.info.setdefault(_WRITTEN, []).extend(ids)
    return ids


def _insert_unnest(session: Session, rows: Sequence[Mapping[str, object]], now: datetime) -> list[int]:
    """PostgreSQL: the rows as two bound arrays, ``INSERT ... SELECT FROM unnest(...) RETURNING id``.
    A multi-row ``VALUES`` list of a 500-item batch (2,500 parameters, a statement of a new length
    each time) was rendered by SQLAlchemy and split again by psycopg on every batch: a tenth of the
    file stage's CPU (issue 13).  Same rows, same transaction; the ids in any order (a set to drain)."""
    table = SearchOutboxEntry.__table__
    source = func.unnest(literal([r["item_id"] for r in rows], ARRAY(String())),
                         literal([r["case_ref"] for r in rows], ARRAY(String()))
                         ).table_valued("item_id", "case_ref").render_derived(name="todo")
    stamp = literal(now, table.c.created_at.type)
    stmt = insert(SearchOutboxEntry).from_select(
        ["item_id", "case_ref", "created_at", "next_attempt_at", "attempts"],
        select(source.c.item_id, source.c.case_ref, stamp, stamp, literal(0, Integer())),
    ).returning(SearchOutboxEntry.id)
    return [int(i) for i in session.scalars(stmt)]


def written_in(session: Session) -> list[int]:
    """The ids of the rows ``enqueue`` wrote through this session since the last call (then
    forgotten): what the caller drains right after its commit."""
    return list(session.info.pop(_WRITTEN, []))


def _case_refs_of_customers(session: Session, customer_ids: Sequence[str]) -> list[str]:
    refs: list[str] = []
    unique = list(dict.fromkeys(customer_ids))
    for start in range(0, len(unique), IN_CHUNK):
        refs.extend(session.scalars(select(Case.ref).join(Customer, Case.customer_id == Customer.id)
                                    .where(Customer.customer_id.in_(unique[start:start + IN_CHUNK]))))
    return refs


@dataclass(frozen=True)
class OutboxDepth:
    pending: int  # rows waiting
    failing: int  # of those, rows that failed at least once
    oldest_age_s: float  # age of the oldest row (0 when none waits)


def depth(session: Session) -> OutboxDepth:
    pending, failing, oldest = session.execute(
        select(func.count(SearchOutboxEntry.id),
               func.count(SearchOutboxEntry.id).filter(SearchOutboxEntry.attempts > 0),
               func.min(SearchOutboxEntry.created_at))).one()
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return OutboxDepth(pending=int(pending or 0), failing=int(failing or 0), oldest_age_s=max(0.0, age))


def discard_up_to(session: Session, last_id: int) -> int:
    """Delete the rows up to ``last_id`` (a reindex from the store has covered them)."""
    result = session.execute(delete(SearchOutboxEntry).where(SearchOutboxEntry.id <= last_id))
    return int(getattr(result, "rowcount", 0) or 0)


def last_id(session: Session) -> int:
    return int(session.scalar(select(func.max(SearchOutboxEntry.id))) or 0)


@dataclass
class DrainReport:
    rows: int = 0  # rows taken in by the index (and deleted)
    documents: int = 0  # documents written to the index
    failed: int = 0  # rows left for a later attempt
    error: str | None = None


@dataclass(frozen=True)
class _Row:
    id: int
    item_id: str | None
    case_ref: str | None
    attempts: int


class OutboxDrainer:
    """Drains the outbox into one index; see the module docstring.  Safe to share between threads
    (one drain at a time per drainer)."""

    def __init__(self, sessions: sessionmaker[Session], index: SearchIndex, *, batch: int = 500,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.index = index
        self.batch = batch
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.paused_until: datetime | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def backoff(self, attempts: int) -> float:
        return exponential_backoff(attempts, self.backoff_initial_s, self.backoff_max_s)

    def paused(self) -> bool:
        return self.paused_until is not None and self.clock() < self.paused_until

    def drain(self, *, ids: Sequence[int] | None = None, min_age_s: float = 0.0) -> DrainReport:
        """One batch of due rows (only ``ids``, when given; only rows at least ``min_age_s`` old).
        Nothing while paused after a failure.  Store errors propagate (as ``StoreUnavailable``)."""
        report = DrainReport()
        if ids is not None and not ids:
            return report
        with self._lock:
            if self.paused():
                return report
            now = self.clock()
            with translate_errors():
                rows = self._due(now, ids, min_age_s)
            if rows:
                self._drain_rows(rows, now, report)
        return report

    def drain_all(self, *, min_age_s: float = 0.0, stop: threading.Event | None = None) -> DrainReport:
        """Batches until no due row is left, a batch fails, or ``stop`` is set."""
        total = DrainReport()
        while stop is None or not stop.is_set():
            report = self.drain(min_age_s=min_age_s)
            total.rows += report.rows
            total.documents += report.documents
            total.failed += report.failed
            total.error = report.error or total.error
            if report.failed or report.rows < self.batch:
                break
        return total

    def _due(self, now: datetime, ids: Sequence[int] | None, min_age_s: float) -> list[_Row]:
        query = (select(SearchOutboxEntry.id, SearchOutboxEntry.item_id, SearchOutboxEntry.case_ref,
                        SearchOutboxEntry.attempts)
                 .where(SearchOutboxEntry.next_attempt_at <= now)
                 .order_by(SearchOutboxEntry.next_attempt_at, SearchOutboxEntry.id).limit(self.batch))
        if min_age_s > 0:
            query = query.where(SearchOutboxEntry.created_at <= now - timedelta(seconds=min_age_s))
        rows: list[_Row] = []
        with self.sessions() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})  # a read: no SQLite write lock
            if ids is None:
                rows = [_Row(*r) for r in session.execute(query)]
            else:
                for start in range(0, len(ids), IN_CHUNK):
                    chunk = ids[start:start + IN_CHUNK]
                    rows += [_Row(*r) for r in session.execute(query.where(SearchOutboxEntry.id.in_(chunk)))]
        return rows

    def _drain_rows(self, rows: list[_Row], now: datetime, report: DrainReport) -> None:
        try:
            written = self._write(rows)
        except Exception as exc:  # the index's errors (SearchError), the store's, a driver's
            # anything but a refusal of ours (an OSError, a client's own error) counts as an outage
            outage = bool(getattr(exc, "outage", not isinstance(exc, CaseStoreError)))
            if outage or len(rows) == 1:
                self._failed(rows, now, exc, outage, report)
                return
            log.warning("search outbox: the index refused a batch of %d (%s); trying row by row", len(rows), exc)
            for row in rows:
                self._drain_rows([row], now, report)
            return
        with translate_errors(), self.sessions() as session, session.begin():
            ids = [r.id for r in rows]
            for start in range(0, len(ids), IN_CHUNK):
                session.execute(delete(SearchOutboxEntry).where(SearchOutboxEntry.id.in_(ids[start:start + IN_CHUNK])))
        report.rows += len(rows)
        report.documents += written
        if self.last_error is not None:
            log.info("search outbox: the index takes updates again (%d row(s) indexed)", len(rows))
        self.last_error = None
        self.paused_until = None

    def _write(self, rows: list[_Row]) -> int:
        item_ids = [r.item_id for r in rows if r.item_id is not None]
        case_refs = [r.case_ref for r in rows if r.case_ref is not None]
        with translate_errors(), self.sessions() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            docs = documents_for_index(session, item_ids=item_ids)
            for ref in dict.fromkeys(case_refs):
                docs.extend(documents_for_index(session, case_ref=ref))
        unique = list({d.document_id: d for d in docs}.values())
        for start in range(0, len(unique), INDEX_CHUNK):
            self.index.index(unique[start:start + INDEX_CHUNK])
        return len(unique)

    def _failed(self, rows: list[_Row], now: datetime, exc: Exception, outage: bool, report: DrainReport) -> None:
        attempts = max(r.attempts for r in rows) + 1
        delay = self.backoff(attempts)
        retry_at = now + timedelta(seconds=delay)
        message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        ids = [r.id for r in rows]
        with translate_errors(), self.sessions() as session, session.begin():
            for start in range(0, len(ids), IN_CHUNK):
                session.execute(update(SearchOutboxEntry)
                                .where(SearchOutboxEntry.id.in_(ids[start:start + IN_CHUNK]))
                                .values(attempts=SearchOutboxEntry.attempts + 1, last_error=message,
                                        next_attempt_at=retry_at))
        report.failed += len(rows)
        report.error = message
        if outage:  # the backend is down: no drainer of this process tries before retry_at
            self.paused_until = retry_at
        if self.last_error is None or attempts in (1, 5) or attempts % 20 == 0:
            log.warning("search outbox: %d row(s) not indexed (attempt %d: %s); retrying in %.0fs",
                        len(rows), attempts, message, delay)
        self.last_error = message


class OutboxLoop:
    """The drainer as a thread (``casework serve``): every ``poll_s`` it drains the rows older
    than ``grace_s`` until none is due.  Store errors are logged and tried again next time."""

    def __init__(self, drainer: OutboxDrainer, *, poll_s: float = 1.0, grace_s: float = 5.0,
                 stop: threading.Event | None = None) -> None:
        self.drainer = drainer
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.stop = stop or threading.Event()
        self.errors = 0
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        log.info("search outbox loop running: every %.1fs, rows older than %.0fs", self.poll_s, self.grace_s)
        repeat_rounds(lambda: self.drainer.drain_all(min_age_s=self.grace_s, stop=self.stop), stop=self.stop,
                      interval_s=self.poll_s, name="search outbox loop", on_error=self._failed)
        log.info("search outbox loop stopped")

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="search-outbox", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def state(self) -> str:
        if not self.alive():
            return "stopped"
        if self.drainer.last_error:
            return f"running (index not taking updates: {self.drainer.last_error})"
        return "running"

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
