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


def recompute_batch(session: Session, *, calendar_name: str, calendar: BusinessCalendar, after: int = 0,
                    limit: int = DEFAULT_BATCH, moments: Moments | None = None) -> BatchResult:
    """Re-compute the running clocks of ``calendar_name`` with ids above ``after`` (at most
    ``limit``); flushes, the caller commits.  ``moments``: a cache of computed moments to share
    across the batches of one run (clocks with the same start and use share their due times)."""
    pg = session.get_bind().dialect.name == "postgresql"
    ids = list(session.scalars(select(SlaClock.id).where(SlaClock.calendar == calendar_name,
                                                          text("sla_clocks.state = 'running'"), SlaClock.id > after)
                               .order_by(SlaClock.id).limit(limit)))
    if not ids:
        return BatchResult(0, 0, 0, 0, 0)
    c = _CLOCKS.c
    stmt = (select(c.id, c.case_id, c.resumed_at, c.used_seconds, c.budget_seconds, c.warn_percent, c.due_at,
                   c.warn_at, c.next_fire_at, c.warned_at, c.breached_at)
            .where(c.id >= ids[0], c.id <= ids[-1], c.calendar == calendar_name, text("sla_clocks.state = 'running'")))
    if pg:
        stmt = stmt.with_for_update(skip_locked=True)
    rows = session.execute(stmt).all()
    cache = moments if moments is not None else Moments(calendar)
    changed: list[tuple[int, datetime | None, datetime | None, datetime | None]] = []
    cases: set[int] = set()
    for row in rows:
        if row.resumed_at is None:  # a running clock always has one; leave a broken row as it is
            continue
        due_at, warn_at = cache.of(row.resumed_at, row.used_seconds, row.budget_seconds, row.warn_percent)
        next_fire_at = warn_at if row.warned_at is None else due_at if row.breached_at is None else None
        if (due_at, warn_at, next_fire_at) != (row.due_at, row.warn_at, row.next_fire_at):
            changed.append((row.id, due_at, warn_at, next_fire_at))
            cases.add(row.case_id)
    if changed:
        _write(session, changed, pg)
    for obj in list(session.identity_map.values()):  # loaded copies are stale now
        if isinstance(obj, SlaClock) and obj.calendar == calendar_name:
            session.expire(obj)
    tasks = _retime_tasks(session, sorted(cases), pg)
    if changed:
        log.info("calendar %s: %d of %d running clock(s) moved, %d task(s) re-timed", calendar_name, len(changed),
                 len(rows), tasks)
    return BatchResult(len(ids), len(changed), max(0, len(ids) - len(rows)), ids[-1], tasks)


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


def _write(session: Session, changed: list[tuple[int, datetime | None, datetime | None, datetime | None]],
           pg: bool) -> None:
    """The new moments of the changed clocks: on PostgreSQL one ``UPDATE ... FROM unnest(arrays)``
    (four parameters however many clocks), on SQLite an executemany (no round trips there)."""
    if pg:
        ids, dues, warns, nexts = (list(col) for col in zip(*changed, strict=True))
        session.execute(_PG_WRITE, {"ids": ids, "dues": dues, "warns": warns, "nexts": nexts})
        return
    session.connection().execute(
        update(_CLOCKS).where(_CLOCKS.c.id == bindparam("b_id"))
        .values(due_at=bindparam("b_due"), warn_at=bindparam("b_warn"), next_fire_at=bindparam("b_next")),
        [{"b_id": i, "b_due": d, "b_warn": w, "b_next": n} for i, d, w, n in changed])


_PG_WRITE = text(
    "UPDATE sla_clocks AS c SET due_at = v.due_at, warn_at = v.warn_at, next_fire_at = v.next_fire_at "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:dues AS timestamptz[]), CAST(:warns AS timestamptz[]), "
    "CAST(:nexts AS timestamptz[])) AS v(id, due_at, warn_at, next_fire_at) WHERE c.id = v.id")


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
