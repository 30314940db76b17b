"""The SLA clock loop as a running thing: every ``CASEWORK_CLOCK__INTERVAL_S`` seconds it fires the
clocks that are due (``casestore.work.clock_loop.sweep``) and returns tasks whose lease ran out to
their queues (``casestore.work.queues.reap_expired_leases``), committing each batch; then folds the
queue counts' deltas (``casestore.work.queue_counts.fold``).

``casework serve`` runs it as a thread on the embedded default; ``casework worker clock`` runs it
in the foreground (production).  Several may run at once: each clock event still fires once.
A store that is down or busy is logged and tried again at the next tick; so is any other error
(an escalation must not stop for good because one batch failed).

It holds no configuration, so a changed case type or calendar needs no restart here: escalations
come from each case's stored definition (by version and digest, ``clock_loop.case_types``), and
the moments to fire at are in the clock rows (a calendar change moves them: `casework calendar
recompute`).  `casework serve` and the file stage reload theirs (``api.config_watch``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from casestore.db import translate_errors
from casestore.models import utcnow
from casestore.rounds import repeat_rounds
from casestore.work import queue_counts
from casestore.work.clock_loop import sweep
from casestore.work.queues import reap_expired_leases

log = logging.getLogger(__name__)


@dataclass
class TickResult:
    warned: int = 0
    breached: int = 0
    reaped: int = 0
    folded: int = 0  # queue-count deltas folded


@dataclass
class ClockLoop:
    sessions: sessionmaker[Session]
    interval_s: float = 5.0
    batch: int = 5000
    stop: threading.Event = field(default_factory=threading.Event)
    last_tick: datetime | None = None
    errors: int = 0
    _thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> TickResult:
        """One pass: sweep and reap in committed batches until nothing more is due at ``now``."""
        when = now or utcnow()
        result = TickResult()
        with translate_errors():
            more = True
            while more and not self.stop.is_set():
                with self.sessions() as session, session.begin():
                    swept = sweep(session, now=when, limit=self.batch)
                result.warned += swept.warned
                result.breached += swept.breached
                more = swept.more
            while not self.stop.is_set():
                with self.sessions() as session, session.begin():
                    n = reap_expired_leases(session, now=when, limit=self.batch)
                result.reaped += n
                if n < self.batch:
                    break
            with self.sessions() as session, session.begin():  # queue counts: deltas into their base
                result.folded = queue_counts.fold(session)
        self.last_tick = when
        return result

    def run(self) -> None:
        """Tick until ``stop`` is set."""
        log.info("clock loop running: a sweep every %.1fs, batches of %d", self.interval_s, self.batch)
        repeat_rounds(self.tick, stop=self.stop, interval_s=self.interval_s, name="clock loop",
                      on_error=self._failed)
        log.info("clock loop stopped")

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="clock-loop", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
