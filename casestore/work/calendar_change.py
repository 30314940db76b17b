"""A business calendar changed (a holiday added, hours moved): re-compute the due and warning times
of the running clocks on it, and the queue order of their cases' open tasks, in batches.

``recompute_batch`` takes up to ``limit`` running clocks of the calendar with ids above ``after``
(keyset pagination in id order within a bounded id window, so a run resumes where it stopped and a
calendar with few of many clocks is read as ranges of the primary key), re-schedules each from its
``resumed_at`` and ``used_seconds`` on the new calendar, as ``clocks.schedule`` does (``Moments``:
the calendar's ``Timeline``, two binary searches a clock, and clocks with the same start, use,
budget and warning share one computation; PostgreSQL hands the instants over as integer
microseconds both ways, so no datetime is built or parsed), locks the changed ones' cases' work
rows and then the clocks, in the engine's order (PostgreSQL ``FOR UPDATE SKIP LOCKED``: a case or
clock the engine holds this moment is left for the caller's next pass), writes them with one
``UPDATE ... FROM unnest(arrays)`` (PostgreSQL) or an executemany (SQLite), and sets the open
tasks of their cases to the earliest running due time (one set-based UPDATE).  Only plain columns
are read: no ORM objects.  Warnings and breaches already fired stay
fired; a clock whose new moments have passed fires at the next sweep.

The caller commits each batch (``casework calendar recompute NAME``), so get-next never waits long
behind it.  Paused and stopped clocks have no running due time and are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import BigInteger, Table, bindparam, func, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from casestore.models import UTCDateTime
from casestore.work.calendar import BusinessCalendar, Timeline, from_us, instant_us
from casestore.work.escalation import in_ids, int_array
from casestore.work.models import NO_DUE, CaseWork, SlaClock, WorkTask

log = logging.getLogger(__name__)

_CLOCKS = cast(Table, SlaClock.__table__)
_TASKS = cast(Table, WorkTask.__table__)
DEFAULT_BATCH = 5000
WINDOW = 4  # a batch reads ids up to ``after + limit * WINDOW``
_SECOND = 1_000_000


@dataclass(frozen=True)
class BatchResult:
    clocks: int    # running clocks looked at
    moved: int     # whose due or warning time changed
    skipped: int   # locked by someone else (PostgreSQL): look again later
    last_id: int   # resume after this id
    tasks: int     # open tasks whose due time changed
    done: bool = True  # no clock ids beyond ``last_id``: this pass is over


Changed = tuple[int, int, int, int, int, int, int, int]
"""A clock whose moments change: id, case, the inputs they were computed from (resumed at, used,
budget, warn %) and the new due and warning times; instants in microseconds since the epoch."""


@dataclass(frozen=True)
class Plan:
    """What one batch will write: the clocks looked at and, for those whose moments change, the
    inputs they were computed from (the write checks them) and the new due and warning times."""

    calendar_name: str
    looked_at: int
    last_id: int
    changed: list[Changed]
    done: bool = True


def recompute_batch(session: Session, *, calendar_name: str, calendar: BusinessCalendar, after: int = 0,
                    limit: int = DEFAULT_BATCH, moments: Moments | None = None) -> BatchResult:
    """Re-compute the running clocks of ``calendar_name`` with ids above ``after`` (at most
    ``limit``) in the session's transaction: ``plan_batch`` then ``write_batch``.  The CLI runs the
    two in transactions of their own, so the computing holds no locks."""
    return write_batch(session, plan_batch(session, calendar_name=calendar_name, calendar=calendar, after=after,
                                           limit=limit, moments=moments))


def _us(column: Any) -> Any:
    """PostgreSQL: a timestamp column as microseconds since the epoch (exact: EXTRACT is numeric)."""
    return sql_cast(func.extract("epoch", column) * 1_000_000, BigInteger)


def plan_batch(session: Session, *, calendar_name: str, calendar: BusinessCalendar, after: int = 0,
               limit: int = DEFAULT_BATCH, moments: Moments | None = None) -> Plan:
    """Read the next ``limit`` running clocks after id ``after`` (keyset pagination, no locks) and
    compute their moments on ``calendar``.  ``moments``: a cache to share across the batches of
    one run (clocks with the same start and use share their due times).

    The read is bounded by an id window as well (``limit * WINDOW`` ids): a calendar that holds a
    few of many clocks is read as a range of the primary key batch by batch, never as a scan of
    the whole table per batch (what PostgreSQL's planner chose for a selective calendar).  A window
    may hold fewer clocks than ``limit``, or none: ``done`` says when no ids are left."""
    pg = session.get_bind().dialect.name == "postgresql"
    c = _CLOCKS.c
    upto = after + max(limit, 1) * WINDOW
    times = [_us(c.resumed_at), _us(c.due_at), _us(c.warn_at)] if pg else [c.resumed_at, c.due_at, c.warn_at]
    rows = session.execute(
        select(c.id, c.case_id, c.used_seconds, c.budget_seconds, c.warn_percent, *times)
        .where(c.calendar == calendar_name, text("sla_clocks.state = 'running'"), c.id > after, c.id <= upto)
        .order_by(c.id).limit(limit)).all()
    cache = moments if moments is not None else Moments(calendar)
    of = cache.of
    changed: list[Changed] = []
    for clock_id, case_id, used, budget, warn_percent, resumed, due_at, warn_at in rows:
        if resumed is None:  # a running clock always has one; leave a broken row as it is
            continue
        if not pg:
            resumed = instant_us(resumed)
            due_at = None if due_at is None else instant_us(due_at)
            warn_at = None if warn_at is None else instant_us(warn_at)
        new_due, new_warn = of(resumed, used, budget, warn_percent)
        if new_due != due_at or new_warn != warn_at:
            changed.append((clock_id, case_id, resumed, used, budget, warn_percent, new_due, new_warn))
    if len(rows) >= limit:
        return Plan(calendar_name, len(rows), rows[-1].id, changed, done=False)
    last = session.scalar(select(func.max(c.id)))  # the primary key's last entry
    return Plan(calendar_name, len(rows), upto, changed, done=last is None or last <= upto)


def write_batch(session: Session, plan: Plan) -> BatchResult:
    """Write a plan: lock the changed clocks (PostgreSQL ``SKIP LOCKED``: one the engine holds is
    counted as skipped, for the caller's next pass), write the new moments of those whose inputs
    are still the planned ones (a clock paused or changed meanwhile was re-scheduled by the
    engine: left as it is), ``next_fire_at`` from the clock's own fired state, and re-time the
    open tasks of their cases.  Flushes, the caller commits."""
    if not plan.changed:
        return BatchResult(plan.looked_at, 0, 0, plan.last_id, 0, plan.done)
    pg = session.get_bind().dialect.name == "postgresql"
    wanted = [row[0] for row in plan.changed]
    held = wanted
    if pg:
        held = list(session.scalars(select(SlaClock.id).where(in_ids(SlaClock.id, _of_free_cases(session, plan), True))
                                    .order_by(SlaClock.id).with_for_update(skip_locked=True)))
    rows = plan.changed if len(held) == len(wanted) else [r for r in plan.changed if r[0] in set(held)]
    moved, cases = _write(session, plan.calendar_name, rows, pg) if rows else (0, [])
    for obj in list(session.identity_map.values()):  # loaded copies are stale now
        if isinstance(obj, SlaClock) and obj.calendar == plan.calendar_name:
            session.expire(obj)
    tasks = _retime_tasks(session, cases, pg)
    if moved:
        log.info("calendar %s: %d of %d running clock(s) moved, %d task(s) re-timed", plan.calendar_name,
                 moved, plan.looked_at, tasks)
    return BatchResult(plan.looked_at, moved, len(wanted) - len(held), plan.last_id, tasks, plan.done)


def _of_free_cases(session: Session, plan: Plan) -> list[int]:
    """The planned clocks whose case's work row this transaction could lock (PostgreSQL ``FOR UPDATE
    SKIP LOCKED``), in the engine's order: its writers lock a case's work row, then its tasks, then its
    clocks (``flow.Run.load``), so a batch that took clocks first and then waited for a case's tasks
    could deadlock with them.  Holding the work row, no engine writer holds that case's tasks or
    clocks, and the batch's later waits (a get-next's claim of a task row) cannot close a cycle.  A
    case the engine holds is left, with its clocks, for the caller's next pass, as the clock loop's
    sweep leaves it; a case without a work row has no engine writer and is free."""
    cases = sorted({row[1] for row in plan.changed})
    locked = set(session.scalars(select(CaseWork.case_id).where(in_ids(CaseWork.case_id, cases, True))
                                 .order_by(CaseWork.case_id).with_for_update(skip_locked=True)))
    if len(locked) < len(cases):  # held by another transaction, or no work row at all (free)
        rest = [c for c in cases if c not in locked]
        held_elsewhere = set(session.scalars(select(CaseWork.case_id).where(in_ids(CaseWork.case_id, rest, True))))
        locked.update(c for c in rest if c not in held_elsewhere)
    return [row[0] for row in plan.changed if row[1] in locked]


class Moments:
    """Due and warning times (microseconds since the epoch) by (resumed at, used, budget, warn %),
    on one calendar: each computed once (a calendar change often moves many clocks that started
    together), by the calendar's ``Timeline`` (two binary searches, no walk over the dates).  Equal
    to ``clocks.moments`` (a test checks it)."""

    def __init__(self, calendar: BusinessCalendar, size: int = 100_000) -> None:
        self.calendar = calendar
        self.size = size
        self.timeline = Timeline(calendar)
        self._known: dict[tuple[int, int, int, int], tuple[int, int]] = {}

    def of(self, resumed_at: int, used: int, budget: int, warn_percent: int) -> tuple[int, int]:
        key = (resumed_at, used, budget, warn_percent)
        found = self._known.get(key)
        if found is None:
            due_us = self.timeline.due_us
            found = (due_us(resumed_at, max(0, budget - used) * _SECOND),
                     due_us(resumed_at, max(0, budget * warn_percent // 100 - used) * _SECOND))
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[key] = found
        return found


def _write(session: Session, calendar_name: str, rows: list[Changed], pg: bool) -> tuple[int, list[int]]:
    """Write the new moments: how many clocks were written, and the cases whose tasks to re-time.
    PostgreSQL: one ``UPDATE ... FROM unnest(arrays)`` (a few parameters however many clocks, the
    instants as integers: no datetimes to build or parse); SQLite: an executemany."""
    if pg:
        ids, _cases, resumed, used, budget, warn_percent, dues, warns = (list(col) for col in zip(*rows, strict=True))
        written = list(session.scalars(_PG_WRITE, {
            "calendar": calendar_name, "ids": int_array(ids), "resumed": int_array(resumed), "used": int_array(used),
            "budget": int_array(budget), "warn_percent": int_array(warn_percent), "dues": int_array(dues),
            "warns": int_array(warns)}))
        return len(written), sorted(set(written))
    result = session.execute(_SQLITE_WRITE, [
        {"calendar": calendar_name, "id": i, "resumed": from_us(r), "used": u, "budget": b, "warn_percent": w,
         "due": from_us(d), "warn": from_us(wn)} for i, _case, r, u, b, w, d, wn in rows])
    # re-timing a case whose clock was not written changes nothing: the tasks take the clocks' due times
    return int(getattr(result, "rowcount", len(rows))), sorted({row[1] for row in rows})


_NEXT_FIRE = "CASE WHEN c.warned_at IS NULL THEN {warn} WHEN c.breached_at IS NULL THEN {due} END"
_AT = "TIMESTAMPTZ 'epoch' + u.{0} * INTERVAL '1 microsecond'"  # exact: bigint microseconds
_PG_WRITE = text(
    "UPDATE sla_clocks AS c SET due_at = v.due_at, warn_at = v.warn_at, next_fire_at = "
    + _NEXT_FIRE.format(warn="v.warn_at", due="v.due_at")
    + " FROM (SELECT u.id, u.used_seconds, u.budget_seconds, u.warn_percent, "
    + f"{_AT.format('resumed')} AS resumed_at, {_AT.format('due')} AS due_at, {_AT.format('warn')} AS warn_at "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:resumed AS bigint[]), CAST(:used AS integer[]), "
    "CAST(:budget AS integer[]), CAST(:warn_percent AS integer[]), CAST(:dues AS bigint[]), CAST(:warns AS bigint[])) "
    "AS u(id, resumed, used_seconds, budget_seconds, warn_percent, due, warn)) AS v "
    "WHERE c.id = v.id AND c.calendar = :calendar AND c.state = 'running' AND c.resumed_at = v.resumed_at "
    "AND c.used_seconds = v.used_seconds AND c.budget_seconds = v.budget_seconds "
    "AND c.warn_percent = v.warn_percent RETURNING c.case_id")
_SQLITE_WRITE = text(
    "UPDATE sla_clocks AS c SET due_at = :due, warn_at = :warn, next_fire_at = "
    + _NEXT_FIRE.format(warn=":warn", due=":due")
    + " WHERE c.id = :id AND c.calendar = :calendar AND c.state = 'running' AND c.resumed_at = :resumed "
    "AND c.used_seconds = :used AND c.budget_seconds = :budget AND c.warn_percent = :warn_percent"
).bindparams(bindparam("due", type_=UTCDateTime()), bindparam("warn", type_=UTCDateTime()),
             bindparam("resumed", type_=UTCDateTime()))


_PG_RETIME = text(
    "UPDATE tasks AS t SET due_at = e.due_at FROM ("
    "SELECT k.case_id, coalesce(min(c.due_at), CAST(:none AS timestamptz)) AS due_at "
    "FROM unnest(CAST(:cases AS integer[])) AS k(case_id) "
    "LEFT JOIN sla_clocks AS c ON c.case_id = k.case_id AND c.state = 'running' GROUP BY k.case_id) AS e "
    "WHERE t.case_id = e.case_id AND t.state IN ('queued', 'active') AND t.due_at IS DISTINCT FROM e.due_at")


def _retime_tasks(session: Session, case_ids: list[int], pg: bool) -> int:
    """Open tasks of these cases take the earliest running due time of their case (get-next's order)."""
    if not case_ids:
        return 0
    if pg:  # the earliest due time once per case, not twice per task
        result = session.execute(_PG_RETIME, {"cases": int_array(case_ids), "none": NO_DUE})
        return int(getattr(result, "rowcount", 0) or 0)
    earliest = (select(func.coalesce(func.min(SlaClock.due_at), NO_DUE))
                .where(SlaClock.case_id == _TASKS.c.case_id, text("sla_clocks.state = 'running'"))
                .scalar_subquery())
    result = session.execute(
        update(_TASKS).where(in_ids(_TASKS.c.case_id, case_ids, pg), text("tasks.state IN ('queued', 'active')"),
                             _TASKS.c.due_at.is_distinct_from(earliest))
        .values(due_at=earliest).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
