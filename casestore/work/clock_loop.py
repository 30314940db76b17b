"""The SLA clock loop: fire each clock's warn and breach once, and run the escalations they trigger.

``sweep`` reads up to ``limit`` clocks whose ``next_fire_at`` has come (the partial index
``ix_sla_clocks_next_fire_at``: with nothing due it reads one index page), and for each:

* a warning moment passed and not yet fired: ``warned_at`` is set, ``sla.warned`` written, and the
  type's escalations ``on: warn`` for that clock collected;
* the due time passed and not yet fired: the same with ``breached_at``, ``sla.breached`` and
  ``on: breach`` (both in one sweep when the loop was down past both moments);
* ``next_fire_at`` becomes the next unfired moment (the due time after a warning), or NULL.

Then the collected escalations are applied together (``casestore.work.escalation``).  Every
write is set-based: a few UPDATEs by group, and the audit events (one per transition) as
``INSERT ... SELECT`` over the clocks and tasks they are about, with the details built by the
database (``audit.record_select``): 10,000 breaches are a few dozen statements, with no per-row
round trip and no JSON encoding in Python.  The fired
state lives in the clock row and is committed with the actions by the caller, who commits each
batch: so an event fires exactly once across restarts, and with two sweepers at once too
(PostgreSQL: the clocks are read ``FOR UPDATE SKIP LOCKED``, so the second sweeper takes other
clocks; SQLite: the session's ``BEGIN IMMEDIATE`` writer lock runs them one after the other).
On PostgreSQL the cases' work rows are then locked ``SKIP LOCKED`` too, and the clocks of a case
the engine is changing (it locks the work row, then tasks, then clocks) wait for the next sweep:
the loop never waits for a case, so the two cannot deadlock.

The moments themselves (``warn_at``, ``due_at``) are working-time arithmetic done when a clock
starts, resumes or its calendar changes (``casestore.work.clocks``); the loop needs no calendar.
A clock that is not running but still has a ``next_fire_at`` (which the clock transitions never
leave) is cleared without firing.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, tuple_, update
from sqlalchemy.orm import Session

from casestore import audit
from casestore.work.definitions import CaseType
from casestore.work.escalation import Escalations, SlaEvent, in_ids
from casestore.work.models import CaseTypeVersion, CaseWork, SlaClock

log = logging.getLogger(__name__)

DEFAULT_BATCH = 5000  # escalation writes per statement group: bigger batches, fewer fixed costs


@dataclass(frozen=True)
class SweepResult:
    clocks: int           # clocks whose moment had come
    warned: int
    breached: int
    actions: int          # escalation actions run
    audit_events: int
    more: bool = False    # the batch was full: more may be due, sweep again (after committing)


_types: dict[tuple[str, int, str], CaseType] = {}  # (name, version, digest): parsed once per process
_types_lock = threading.Lock()


def case_types(session: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], CaseType]:
    """The stored definitions of these (name, version) pairs, parsed once per process.

    Keyed by the stored digest too: a process may meet more than one store (tests do), and the
    same (name, version) in another store may be another definition."""
    if not keys:
        return {}
    digests = {(name, version): digest for name, version, digest in session.execute(
        select(CaseTypeVersion.name, CaseTypeVersion.version, CaseTypeVersion.digest)
        .where(tuple_(CaseTypeVersion.name, CaseTypeVersion.version).in_(sorted(keys))))}
    with _types_lock:
        missing = {k for k, d in digests.items() if (*k, d) not in _types}
    if missing:
        rows = session.execute(select(CaseTypeVersion.name, CaseTypeVersion.version, CaseTypeVersion.digest,
                                      CaseTypeVersion.definition)
                               .where(tuple_(CaseTypeVersion.name, CaseTypeVersion.version).in_(sorted(missing))))
        loaded = {}
        for name, version, digest, definition in rows:
            try:
                loaded[(name, version, digest)] = CaseType.model_validate(definition)
            except ValueError as exc:
                log.error("stored case type %s v%d does not validate; its escalations cannot run: %s",
                          name, version, exc)
        with _types_lock:
            _types.update(loaded)
    with _types_lock:
        return {k: _types[(*k, d)] for k, d in digests.items() if (*k, d) in _types}


_CLOCKS = cast(Table, SlaClock.__table__)
_NEXT: dict[str, Any] = {"warn_at": _CLOCKS.c.warn_at, "due_at": _CLOCKS.c.due_at, "none": None}


def _next_moment(state: str, warned_at: datetime | None, breached_at: datetime | None,
                 warn_at: datetime | None) -> str:
    """Which moment to fire next (as ``clocks.next_fire`` says): the warning if neither fired yet,
    else the due time until it fires; "none" when the clock is not running or has breached."""
    if state != "running" or breached_at is not None:
        return "none"
    if warned_at is None and warn_at is not None:
        return "warn_at"
    return "due_at"


def sweep(session: Session, *, now: datetime, limit: int = DEFAULT_BATCH) -> SweepResult:
    """Fire the clocks due by ``now`` (at most ``limit``); flushes, the caller commits."""
    pg = session.get_bind().dialect.name == "postgresql"
    stmt = (select(SlaClock.id, SlaClock.case_id, SlaClock.name, SlaClock.state, SlaClock.warn_at,
                   SlaClock.due_at, SlaClock.warned_at, SlaClock.breached_at)
            .where(SlaClock.next_fire_at <= now).order_by(SlaClock.next_fire_at).limit(limit))
    if pg:
        stmt = stmt.with_for_update(skip_locked=True)
    clocks = session.execute(stmt).all()
    if not clocks:
        return SweepResult(0, 0, 0, 0, 0)
    case_ids = sorted({c.case_id for c in clocks})
    work_stmt = (select(CaseWork.case_id, CaseWork.case_type, CaseWork.type_version)
                 .where(in_ids(CaseWork.case_id, case_ids, pg)))
    if pg:  # the engine locks a case's work row, then its tasks, then its clocks: never wait for a busy case
        work_stmt = work_stmt.with_for_update(skip_locked=True)
    work = {case_id: (case_type, version) for case_id, case_type, version in session.execute(work_stmt)}
    if pg:
        busy = {c.case_id for c in clocks} - set(work)
        if busy:  # a clock with no work row at all is not busy: it fires, with no escalation
            busy -= _without_work(session, busy)
        if busy:
            log.debug("clock sweep: %d case(s) busy, their clocks wait for the next sweep", len(busy))
            clocks = [c for c in clocks if c.case_id not in busy]
    types = case_types(session, set(work.values()))
    escalations = Escalations()
    fired: dict[tuple[str, int, str], list[int]] = defaultdict(list)  # (action, actions run, note) -> clocks
    updates: dict[tuple[bool, bool, str], list[int]] = defaultdict(list)  # (warn, breach, next) -> clocks
    warned = breached = actions = 0
    for clock in clocks:
        events: list[SlaEvent] = []
        warned_at, breached_at = clock.warned_at, clock.breached_at
        if clock.state == "running":
            if warned_at is None and breached_at is None and clock.warn_at is not None and clock.warn_at <= now:
                warned_at = now
                events.append("warn")
            if breached_at is None and clock.due_at is not None and clock.due_at <= now:
                breached_at = now
                events.append("breach")
        updates[("warn" in events, "breach" in events,
                 _next_moment(clock.state, warned_at, breached_at, clock.warn_at))].append(clock.id)
        key = work.get(clock.case_id)
        case_type = types.get(key) if key is not None else None
        for on in events:
            n = escalations.add(case_type, case_id=clock.case_id, clock=clock.name, on=on) if case_type else 0
            actions += n
            warned += on == "warn"
            breached += on == "breach"
            note = "" if case_type else f"case type {key} is not stored: no escalations ran"
            fired[("sla.warned" if on == "warn" else "sla.breached", n, note)].append(clock.id)
    events_written = 0
    for (action, n, note), ids_ in fired.items():  # before the clocks change: one INSERT ... SELECT a group
        c = _CLOCKS.c
        events_written += audit.record_select(
            session, action=action, at=now, case_id=c.case_id, rows=select(c.id).where(in_ids(c.id, ids_, pg)),
            details={"clock": c.name, "clock_id": c.id, "warn_at": c.warn_at, "due_at": c.due_at,
                     "escalation_actions": n, **({"note": note} if note else {})})
    for (warn, breach, next_from), ids_ in updates.items():  # a few groups, one UPDATE each
        values: dict[str, Any] = {"next_fire_at": _NEXT[next_from]}
        if warn:
            values["warned_at"] = now
        if breach:
            values["breached_at"] = now
        session.execute(update(_CLOCKS).where(in_ids(_CLOCKS.c.id, ids_, pg)).values(**values))
    events_written += escalations.apply(session, now=now)
    ids = {c.id for c in clocks}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, SlaClock) and obj.id in ids:
            session.expire(obj)
    if warned or breached:
        log.info("clock sweep: %d warned, %d breached, %d escalation actions", warned, breached, actions)
    return SweepResult(len(clocks), warned, breached, actions, events_written, more=len(clocks) >= limit)


def _without_work(session: Session, case_ids: set[int]) -> set[int]:
    """Which of these cases have no work row (not busy: absent)."""
    have = set(session.scalars(select(CaseWork.case_id).where(in_ids(CaseWork.case_id, sorted(case_ids), True))))
    return case_ids - have
