"""A business calendar changed (a holiday added, hours moved): re-compute the due and warning times
of the running clocks on it, and the queue order of their cases' open tasks, in batches.

``recompute_batch`` takes up to ``limit`` running clocks of the calendar with ids above ``after``
(keyset pagination in id order, so a run resumes where it stopped), locks them (PostgreSQL ``FOR
UPDATE SKIP LOCKED``: a clock the engine holds this moment is left for the caller's next pass),
re-schedules each from its ``resumed_at`` and ``used_seconds`` on the new calendar, as
``clocks.schedule`` does (``Moments``: clocks with the same start, use, budget and warning share one
computation), writes the changed ones with one ``UPDATE ... FROM unnest(arrays)`` (PostgreSQL) or
an executemany (SQLite), and sets the open tasks of their cases to the earliest running due time
(one set-based UPDATE).  Only plain columns are read: no ORM objects.  Warnings and breaches
already fired stay fired; a clock whose new moments have passed fires at the next sweep.

The caller commits each batch (``casework calendar recompute NAME``), so get-next never waits long
behind it.  Paused and stopped clocks have no running due time and are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from casestore.models import UTCDateTime
from casestore.work import clocks
from casestore.work.calendar import BusinessCalendar
from casestore.work.escalation import in_ids
from casestore.work.models import NO_DUE, SlaClock, WorkTask

log = logging.getLogger(__name__)

_CLOCKS = cast(Table, SlaClock.__table__)
_TASKS = cast(Table, WorkTask.__table__)
DEFAULT_BATCH = 5000


@dataclass(frozen=True)
class BatchResult:
    clocks: int    # running clocks looked at
    moved: int     # whose due or warning time changed
    skipped: int   # locked by someone else (PostgreSQL): look again later
    last_id: int   # resume after this id; 0 when there was nothing
    tasks: int     # open tasks whose due time changed


@dataclass(frozen=True)
class Plan:
    """What one batch will write: the clocks looked at and, for those whose moments change, the
    inputs they were computed from (the write checks them) and the new due and warning times."""

    calendar_name: str
    looked_at: int
    last_id: int
    changed: list[tuple[int, int, datetime, int, int, int, datetime, datetime]]  # id, case, inputs, due, warn


def recompute_batch(session: Session, *, calendar_name: str, calendar: BusinessCalendar, after: int = 0,
                    limit: int = DEFAULT_BATCH, moments: Moments | None = None) -> BatchResult:
    """Re-compute the running clocks of ``calendar_name`` with ids above ``after`` (at most
    ``limit``) in the session's transaction: ``plan_batch`` then ``write_batch``.  The CLI runs the
    two in transactions of their own, so the computing holds no locks."""
    return write_batch(session, plan_batch(session, calendar_name=calendar_name, calendar=calendar, after=after,
                                           limit=limit, moments=moments))


def plan_batch(session: Session, *, calendar_name: str, calendar: BusinessCalendar, after: int = 0,
               limit: int = DEFAULT_BATCH, moments: Moments | None = None) -> Plan:
    """Read the next ``limit`` running clocks after id ``after`` (keyset pagination, no locks) and
    compute their moments on ``calendar``.  ``moments``: a cache to share across the batches of
    one run (clocks with the same start and use share their due times)."""
    c = _CLOCKS.c
    rows = session.execute(
        select(c.id, c.case_id, c.resumed_at, c.used_seconds, c.budget_seconds, c.warn_percent, c.due_at, c.warn_at)
        .where(c.calendar == calendar_name, text("sla_clocks.state = 'running'"), c.id > after)
        .order_by(c.id).limit(limit)).all()
    cache = moments if moments is not None else Moments(calendar)
    changed = []
    for row in rows:
        if row.resumed_at is None:  # a running clock always has one; leave a broken row as it is
            continue
        due_at, warn_at = cache.of(row.resumed_at, row.used_seconds, row.budget_seconds, row.warn_percent)
        if (due_at, warn_at) != (row.due_at, row.warn_at):
            changed.append((row.id, row.case_id, row.resumed_at, row.used_seconds, row.budget_seconds,
                            row.warn_percent, due_at, warn_at))
    return Plan(calendar_name, len(rows), rows[-1].id if rows else 0, changed)


def write_batch(session: Session, plan: Plan) -> BatchResult:
    """Write a plan: lock the changed clocks (PostgreSQL ``SKIP LOCKED``: one the engine holds is
    counted as skipped, for the caller's next pass), write the new moments of those whose inputs
    are still the planned ones (a clock paused or changed meanwhile was re-scheduled by the
    engine: left as it is), ``next_fire_at`` from the clock's own fired state, and re-time the
    open tasks of their cases.  Flushes, the caller commits."""
    if not plan.looked_at:
        return BatchResult(0, 0, 0, 0, 0)
    pg = session.get_bind().dialect.name == "postgresql"
    wanted = [row[0] for row in plan.changed]
    held = wanted
    if pg and wanted:
        held = list(session.scalars(select(SlaClock.id).where(in_ids(SlaClock.id, wanted, True))
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
    return BatchResult(plan.looked_at, moved, len(wanted) - len(held), plan.last_id, tasks)


class Moments:
    """``due`` and warning times by (resumed at, used, budget, warn %): computed once each on one
    calendar (a calendar change often moves many clocks that started together)."""

    def __init__(self, calendar: BusinessCalendar, size: int = 100_000) -> None:
        self.calendar = calendar
        self.size = size
        self._known: dict[tuple[datetime, int, int, int], tuple[datetime, datetime]] = {}

    def of(self, resumed_at: datetime, used: int, budget: int, warn_percent: int) -> tuple[datetime, datetime]:
        key = (resumed_at, used, budget, warn_percent)
        found = self._known.get(key)
        if found is None:
            found = clocks.moments(resumed_at, used, budget, warn_percent, self.calendar)
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[key] = found
        return found


def _write(session: Session, calendar_name: str,
           rows: list[tuple[int, int, datetime, int, int, int, datetime, datetime]],
           pg: bool) -> tuple[int, list[int]]:
    """Write the new moments: how many clocks were written, and the cases whose tasks to re-time.
    PostgreSQL: one ``UPDATE ... FROM unnest(arrays)`` (a few parameters however many clocks);
    SQLite: an executemany."""
    if pg:
        cols = [list(col) for col in zip(*rows, strict=True)]
        names = ("ids", "cases", "resumed", "used", "budget", "warn_percent", "dues", "warns")
        written = list(session.scalars(_PG_WRITE, {"calendar": calendar_name, **dict(zip(names, cols, strict=True))}))
        return len(written), sorted(set(written))
    result = session.execute(_SQLITE_WRITE, [
        {"calendar": calendar_name, "id": i, "resumed": r, "used": u, "budget": b, "warn_percent": w, "due": d,
         "warn": wn} for i, _case, r, u, b, w, d, wn in rows])
    # re-timing a case whose clock was not written changes nothing: the tasks take the clocks' due times
    return int(getattr(result, "rowcount", len(rows))), sorted({row[1] for row in rows})


_NEXT_FIRE = "CASE WHEN c.warned_at IS NULL THEN {warn} WHEN c.breached_at IS NULL THEN {due} END"
_PG_WRITE = text(
    "UPDATE sla_clocks AS c SET due_at = v.due_at, warn_at = v.warn_at, next_fire_at = "
    + _NEXT_FIRE.format(warn="v.warn_at", due="v.due_at")
    + " FROM unnest(CAST(:ids AS integer[]), CAST(:cases AS integer[]), CAST(:resumed AS timestamptz[]), "
    "CAST(:used AS integer[]), CAST(:budget AS integer[]), CAST(:warn_percent AS integer[]), "
    "CAST(:dues AS timestamptz[]), CAST(:warns AS timestamptz[])) "
    "AS v(id, case_id, resumed_at, used_seconds, budget_seconds, warn_percent, due_at, warn_at) "
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
        result = session.execute(_PG_RETIME, {"cases": case_ids, "none": NO_DUE})
        return int(getattr(result, "rowcount", 0) or 0)
    earliest = (select(func.coalesce(func.min(SlaClock.due_at), NO_DUE))
                .where(SlaClock.case_id == _TASKS.c.case_id, text("sla_clocks.state = 'running'"))
                .scalar_subquery())
    result = session.execute(
        update(_TASKS).where(in_ids(_TASKS.c.case_id, case_ids, pg), text("tasks.state IN ('queued', 'active')"),
                             _TASKS.c.due_at.is_distinct_from(earliest))
        .values(due_at=earliest).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
