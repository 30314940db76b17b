"""A business calendar changed (a holiday added, hours moved): re-compute the due and warning times
of the running clocks on it, and the queue order of their cases' open tasks, in batches.

``recompute_batch`` takes up to ``limit`` running clocks of the calendar with ids above ``after``
(in id order, so a run resumes where it stopped), locks them (PostgreSQL ``FOR UPDATE SKIP
LOCKED``: a clock the engine holds this moment is left for the caller's next pass), re-schedules
each from its ``resumed_at`` and ``used_seconds`` on the new calendar (``clocks.schedule``), writes
the changed ones with one ``UPDATE ... FROM (VALUES ...)`` (PostgreSQL) or an executemany, and
sets the open tasks of their cases to the earliest running due time.  Warnings and breaches
already fired stay fired; a clock whose new moments have passed fires at the next sweep.

The caller commits each batch (``casework calendar recompute NAME``), so get-next never waits long
behind it.  Paused and stopped clocks have no running due time and are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from casestore.work.calendar import BusinessCalendar
from casestore.work.clocks import schedule
from casestore.work.escalation import in_ids
from casestore.work.models import NO_DUE, SlaClock, WorkTask

log = logging.getLogger(__name__)

_CLOCKS = cast(Table, SlaClock.__table__)
_TASKS = cast(Table, WorkTask.__table__)


@dataclass(frozen=True)
class BatchResult:
    clocks: int    # running clocks looked at
    moved: int     # whose due or warning time changed
    skipped: int   # locked by someone else (PostgreSQL): look again later
    last_id: int   # resume after this id; 0 when there was nothing
    tasks: int     # open tasks whose due time changed


def recompute_batch(session: Session, *, calendar_name: str, calendar: BusinessCalendar, after: int = 0,
                    limit: int = 1000) -> BatchResult:
    """Re-compute the running clocks of ``calendar_name`` with ids above ``after`` (at most
    ``limit``); flushes, the caller commits."""
    pg = session.get_bind().dialect.name == "postgresql"
    ids = list(session.scalars(select(SlaClock.id).where(SlaClock.calendar == calendar_name,
                                                          text("sla_clocks.state = 'running'"), SlaClock.id > after)
                               .order_by(SlaClock.id).limit(limit)))
    if not ids:
        return BatchResult(0, 0, 0, 0, 0)
    stmt = select(SlaClock).where(in_ids(SlaClock.id, ids, pg), text("sla_clocks.state = 'running'"))
    if pg:
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt.execution_options(populate_existing=True)))
    changed: list[dict[str, Any]] = []
    for clock in rows:
        before = (clock.due_at, clock.warn_at, clock.next_fire_at)
        schedule(clock, calendar)
        if (clock.due_at, clock.warn_at, clock.next_fire_at) != before:
            changed.append({"b_id": clock.id, "b_due": clock.due_at, "b_warn": clock.warn_at,
                            "b_next": clock.next_fire_at})
    for clock in rows:  # written below in one statement, not by the unit of work
        session.expunge(clock)
    if changed:
        session.connection().execute(
            update(_CLOCKS).where(_CLOCKS.c.id == bindparam("b_id"))
            .values(due_at=bindparam("b_due"), warn_at=bindparam("b_warn"), next_fire_at=bindparam("b_next")),
            changed)
    tasks = _retime_tasks(session, sorted({c.case_id for c in rows if c.id in {x["b_id"] for x in changed}}), pg)
    if changed:
        log.info("calendar %s: %d of %d running clock(s) moved, %d task(s) re-timed", calendar_name, len(changed),
                 len(rows), tasks)
    return BatchResult(len(ids), len(changed), len(ids) - len(rows), ids[-1], tasks)


def _retime_tasks(session: Session, case_ids: list[int], pg: bool) -> int:
    """Open tasks of these cases take the earliest running due time of their case (get-next's order)."""
    if not case_ids:
        return 0
    earliest = (select(func.coalesce(func.min(SlaClock.due_at), NO_DUE))
                .where(SlaClock.case_id == _TASKS.c.case_id, text("sla_clocks.state = 'running'"))
                .scalar_subquery())
    result = session.execute(
        update(_TASKS).where(in_ids(_TASKS.c.case_id, case_ids, pg), text("tasks.state IN ('queued', 'active')"),
                             _TASKS.c.due_at.is_distinct_from(earliest))
        .values(due_at=earliest).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
