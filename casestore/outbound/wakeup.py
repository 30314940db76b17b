"""Waking an idle sender when a message is queued, so a reply goes out now rather than at the
sender's next look (``poll_s``).

- **In one process** (the sender thread of `casework serve`): whatever queues a message calls
  ``queued(session)``; once that session's transaction commits, every ``Wakeup`` of this
  process is set (a SQLAlchemy ``after_commit`` listener).  A rolled-back transaction wakes
  nobody.
- **Across processes on PostgreSQL** (`casework worker sender`): ``queued`` also runs
  ``pg_notify('casework_outbox', '')`` in the same transaction; PostgreSQL delivers it only
  when that transaction commits.  ``listen`` holds one connection with ``LISTEN casework_outbox``
  and sets the sender's ``Wakeup`` on each notification.
- **Across processes on SQLite** there is no notification: a separate sender process finds the
  message at its next poll (``poll_s``).  The embedded default runs the sender as a thread of
  `casework serve`, which the in-process wake-up covers.

The poll stays the fallback everywhere: a lost notification (the listening connection was down
at that moment) costs at most ``poll_s``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "casework_outbox"
_FLAG = "casework_outbox_queued"

_lock = threading.Lock()
_wakeups: weakref.WeakSet[Wakeup] = weakref.WeakSet()


class Wakeup:
    """One sender's alarm: set by a commit that queued a message (this process) or by a
    PostgreSQL notification; the sender waits on it between rounds."""

    def __init__(self) -> None:
        self._event = threading.Event()
        with _lock:
            _wakeups.add(self)

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up (True) or ``stop`` (checked every 0.25 s)."""
        remaining = timeout
        while remaining > 0 and not stop.is_set():
            step = min(remaining, 0.25)
            if self._event.wait(step):
                self._event.clear()
                return True
            remaining -= step
        return False


def wake_all() -> None:
    """Set every ``Wakeup`` of this process."""
    with _lock:
        wakeups = list(_wakeups)
    for w in wakeups:
        w.set()


def queued(session: Session) -> None:
    """A message became due in ``session``'s transaction: wake the senders once it commits."""
    session.info[_FLAG] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        wake_all()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)


def listen(engine: Engine, wakeup: Wakeup, stop: threading.Event, *, retry_s: float = 5.0) -> None:
    """``LISTEN casework_outbox`` on a connection of its own until ``stop``, setting ``wakeup`` on
    each notification (run it in a thread).  Does nothing unless ``engine`` is PostgreSQL.  A lost
    connection is opened again after ``retry_s``; the sender wakes once then, in case a
    notification was missed meanwhile."""
    if engine.dialect.name != "postgresql":
        return
    import psycopg

    args, kwargs = engine.dialect.create_connect_args(engine.url)
    connect_kwargs: Mapping[str, Any] = kwargs
    while not stop.is_set():
        try:
            with psycopg.connect(*args, **connect_kwargs, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                log.info("outbox sender listening for queued messages (PostgreSQL LISTEN %s)", CHANNEL)
                wakeup.set()
                while not stop.is_set():
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        wakeup.set()
        except psycopg.Error as exc:
            log.warning("outbox: LISTEN %s failed (%s); polling meanwhile, listening again in %.0fs",
                        CHANNEL, exc, retry_s)
            stop.wait(retry_s)
