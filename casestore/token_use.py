"""When each token was last used, recorded without a write per request.

Authenticating a request is a pure read (``casestore.users.check_token``).  The time of use goes
into ``LastUseBuffer`` in memory; at most every ``interval_s`` seconds one batch is written in a
short transaction of its own.  That transaction does not wait for locks: on SQLite it gives up at
once when another connection holds the write lock (busy timeout 0 for that statement), on
PostgreSQL it skips rows another transaction has locked (``FOR UPDATE SKIP LOCKED``, with a short
``lock_timeout`` as a bound).  What could not be written stays buffered for the next flush, so
a busy store delays ``last_used_at`` by an interval or two but never a request.

A process that dies loses at most one interval of last-use times; they are informational.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, bindparam, exc, select, update
from sqlalchemy.engine import Connection

from casestore.db import SQLITE_BUSY_TIMEOUT_MS
from casestore.models import ApiToken, utcnow

log = logging.getLogger(__name__)

PG_LOCK_TIMEOUT = "200ms"


class LastUseBuffer:
    """Last-use times by token id, flushed in batches (thread-safe)."""

    def __init__(self, *, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._pending: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last_flush = clock()

    def note(self, token_id: int, at: datetime | None = None) -> None:
        when = at or utcnow()
        with self._lock:
            prev = self._pending.get(token_id)
            if prev is None or when > prev:
                self._pending[token_id] = when

    def pending(self) -> dict[int, datetime]:
        with self._lock:
            return dict(self._pending)

    def due(self) -> bool:
        """Something is buffered and the last flush is at least ``interval_s`` ago."""
        with self._lock:
            return bool(self._pending) and self._clock() - self._last_flush >= self.interval_s

    def flush(self, engine: Engine) -> int:
        """Write the buffered times (only ever moving ``last_used_at`` forward); returns how many
        tokens were written.  Skips, keeping the times, when the store is locked or busy, or when
        another thread is flushing already."""
        if not self._flushing.acquire(blocking=False):
            return 0
        try:
            with self._lock:
                batch, self._pending = self._pending, {}
                self._last_flush = self._clock()
            if not batch:
                return 0
            try:
                written = self._write(engine, batch)
            except (exc.OperationalError, exc.TimeoutError) as e:  # locked, busy, or unreachable: next time
                log.info("token last-use times not written now (%s); kept for the next flush", type(e).__name__)
                written = set()
            self._requeue({k: v for k, v in batch.items() if k not in written})
            return len(written)
        finally:
            self._flushing.release()

    def _requeue(self, left: dict[int, datetime]) -> None:
        with self._lock:
            for token_id, when in left.items():
                prev = self._pending.get(token_id)
                if prev is None or when > prev:
                    self._pending[token_id] = when

    def _write(self, engine: Engine, batch: dict[int, datetime]) -> set[int]:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                _sqlite_busy_timeout(conn, 0)  # outside any transaction: the driver's own statement
                try:
                    with conn.begin():
                        self._update(conn, batch)
                finally:
                    _sqlite_busy_timeout(conn, SQLITE_BUSY_TIMEOUT_MS)
                return set(batch)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'")
                    free = set(conn.scalars(select(ApiToken.id).where(ApiToken.id.in_(list(batch)))
                                            .with_for_update(skip_locked=True)))
                    batch = {k: v for k, v in batch.items() if k in free}
                self._update(conn, batch)
            return set(batch)

    @staticmethod
    def _update(conn: Connection, batch: dict[int, datetime]) -> None:
        if not batch:
            return
        stmt = (update(ApiToken)
                .where(ApiToken.id == bindparam("tid"))
                .where((ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < bindparam("at")))
                .values(last_used_at=bindparam("at")))
        conn.execute(stmt, [{"tid": k, "at": v} for k, v in sorted(batch.items())])


def _sqlite_busy_timeout(conn: Connection, ms: int) -> None:
    """Set the busy timeout on the driver connection directly (a SQLAlchemy execute would begin a
    transaction, and so take the write lock, first)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(ms)}")
    finally:
        cursor.close()
