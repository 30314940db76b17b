"""A calendar change re-computes the running clocks on that calendar (and their cases' task order)
in resumable batches; paused and stopped clocks, and other calendars' clocks, stay as they were."""

from __future__ import annotations

import threading
from datetime import date, time, timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from casestore.work import clocks
from casestore.work.calendar import BusinessCalendar, due, instant_us
from casestore.work.calendar_change import Moments, recompute_batch
from casestore.work.models import CaseWork, SlaClock, WorkTask

from .rows import T0, case, clock, definition, store_definition, task

OFFICE = BusinessCalendar(name="office", timezone="UTC", hours={d: ((time(9), time(17)),) for d in range(5)})
WITH_HOLIDAY = BusinessCalendar(name="office", timezone="UTC", hours=OFFICE.hours,
                                extra_holidays=frozenset({date(2026, 3, 3)}))  # the Tuesday after T0


def _on_office(session: Session, c: SlaClock, budget: timedelta) -> SlaClock:
    """Make ``c`` a clock of the office calendar, scheduled as it was before the change."""
    c.calendar, c.budget_seconds = "office", int(budget.total_seconds())
    c.due_at = due(T0, budget, OFFICE)
    c.warn_at = due(T0, budget * c.warn_percent / 100, OFFICE)
    c.next_fire_at = c.warn_at
    session.flush()
    return c


def test_adding_a_holiday_moves_running_clocks_and_their_tasks(session: Session) -> None:
    s = session
    store_definition(s, definition())
    one, two, other = case(s), case(s), case(s)
    a = _on_office(s, clock(s, one), timedelta(hours=16))            # due Tuesday 17:00 -> Wednesday 17:00
    b = _on_office(s, clock(s, two, name="resolution"), timedelta(hours=4))  # due Monday 13:00: not moved
    paused = _on_office(s, clock(s, other), timedelta(hours=16))
    s.execute(update(SlaClock).where(SlaClock.id == paused.id).values(state="paused", due_at=None, warn_at=None,
                                                                      next_fire_at=None, resumed_at=None))
    elsewhere = clock(s, other, name="resolution")  # calendar "default": not this one
    waiting = task(s, one, due_at=a.due_at)
    before_b, before_elsewhere = b.due_at, elsewhere.due_at
    s.expire_all()

    # from just before a: ids need not start near 0 (a PostgreSQL sequence keeps counting through the
    # rolled-back tests before this one), and a batch reads a bounded window of ids
    first = recompute_batch(s, calendar_name="office", calendar=WITH_HOLIDAY, after=a.id - 1, limit=1)
    assert (first.clocks, first.moved, first.skipped, first.last_id, first.tasks) == (1, 1, 0, a.id, 1)
    second = recompute_batch(s, calendar_name="office", calendar=WITH_HOLIDAY, after=first.last_id, limit=1)
    assert (second.clocks, second.moved, second.last_id) == (1, 0, b.id)
    assert recompute_batch(s, calendar_name="office", calendar=WITH_HOLIDAY, after=second.last_id).clocks == 0
    s.expire_all()
    moved = s.get(SlaClock, a.id)
    assert moved is not None and moved.due_at == T0.replace(day=4, hour=17)  # Wednesday 17:00, past the holiday
    assert moved.warn_at == due(T0, timedelta(hours=12), WITH_HOLIDAY) and moved.next_fire_at == moved.warn_at
    assert s.get(SlaClock, b.id).due_at == before_b  # type: ignore[union-attr]
    assert s.get(SlaClock, paused.id).due_at is None  # type: ignore[union-attr]
    assert s.get(SlaClock, elsewhere.id).due_at == before_elsewhere  # type: ignore[union-attr]
    s.refresh(waiting)
    assert waiting.due_at == moved.due_at  # get-next's order follows the new due time


def test_a_clock_the_engine_changed_after_the_plan_is_left_as_the_engine_wrote_it(session: Session) -> None:
    """The moments are computed without locks (``plan_batch``); the write (``write_batch``) takes
    only clocks whose start and use are still the planned ones."""
    from casestore.work.calendar_change import plan_batch, write_batch

    s = session
    store_definition(s, definition())
    one, two = case(s), case(s)
    kept = _on_office(s, clock(s, one), timedelta(hours=16))
    resumed = _on_office(s, clock(s, two), timedelta(hours=16))
    kept.warned_at = T0  # its warning fired: the next moment to fire is the due time
    s.flush()
    plan = plan_batch(s, calendar_name="office", calendar=WITH_HOLIDAY)
    assert [row[0] for row in plan.changed] == [kept.id, resumed.id]
    s.execute(update(SlaClock).where(SlaClock.id == resumed.id).values(resumed_at=T0 + timedelta(hours=1),
                                                                        used_seconds=3600))  # paused and resumed
    result = write_batch(s, plan)
    assert (result.clocks, result.moved, result.skipped) == (2, 1, 0)
    s.expire_all()
    written, left = s.get(SlaClock, kept.id), s.get(SlaClock, resumed.id)
    assert written is not None and written.due_at == T0.replace(day=4, hour=17)
    assert written.next_fire_at == written.due_at, "warned already: the due time is next"
    assert left is not None and left.due_at == due(T0, timedelta(hours=16), OFFICE), "not overwritten"


def test_a_calendar_with_few_of_many_clocks_is_read_window_by_window_to_the_end(session: Session) -> None:
    """Each batch reads a bounded window of clock ids: a window with none of the calendar's clocks
    is not the end of the pass (``done`` is), and the clocks beyond it are reached."""
    s = session
    store_definition(s, definition())
    for _ in range(6):  # ids the office calendar does not own, before its only clock
        clock(s, case(s), name="resolution")
    last = _on_office(s, clock(s, case(s)), timedelta(hours=16))
    s.expire_all()
    results, after = [], 0
    while True:
        result = recompute_batch(s, calendar_name="office", calendar=WITH_HOLIDAY, after=after, limit=1)
        results.append(result)
        after = result.last_id
        if result.done:
            break
    assert results[0].clocks == 0 and not results[0].done, "an empty window, more ids beyond it"
    assert sum(r.moved for r in results) == 1 and sum(r.clocks for r in results) == 1
    s.expire_all()
    assert s.get(SlaClock, last.id).due_at == T0.replace(day=4, hour=17)  # type: ignore[union-attr]


@pytest.mark.parametrize("budget, used, warn_percent", [(16 * 3600, 0, 75), (16 * 3600, 5 * 3600, 50),
                                                        (4 * 3600, 4 * 3600, 75), (3600, 7200, 90), (0, 0, 75)])
def test_the_moments_of_a_recompute_are_the_clock_transitions_moments(budget: int, used: int,
                                                                      warn_percent: int) -> None:
    moments = Moments(WITH_HOLIDAY)
    for start in (T0, T0 + timedelta(hours=30, seconds=7), T0 - timedelta(days=3, microseconds=1)):
        due_at, warn_at = clocks.moments(start, used, budget, warn_percent, WITH_HOLIDAY)
        assert moments.of(instant_us(start), used, budget, warn_percent) == (instant_us(due_at), instant_us(warn_at))


def test_a_case_the_engine_holds_is_left_for_the_next_pass_without_waiting(engine: Engine,
                                                                          sessions: sessionmaker[Session]) -> None:
    """PostgreSQL: the engine locks a case's work row, then its tasks, then its clocks.  A batch that
    locked the clock first and then waited for the tasks' UPDATE could deadlock with it; it takes the
    work row first, without waiting (``SKIP LOCKED``), and leaves a held case for the next pass."""
    from casestore.work.calendar_change import plan_batch, write_batch

    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    with sessions() as s, s.begin():
        store_definition(s, definition())
        busy, free = case(s), case(s)
        for c in (busy, free):
            task(s, c, due_at=_on_office(s, clock(s, c), timedelta(hours=16)).due_at)
        busy_id, free_id = busy.id, free.id
    results = []
    with sessions() as holder, holder.begin():  # as the engine's Run.load: work row, then tasks
        holder.get(CaseWork, busy_id, with_for_update=True)
        list(holder.scalars(select(WorkTask).where(WorkTask.case_id == busy_id).with_for_update()))

        def recompute() -> None:
            with sessions() as s2:
                with s2.begin():
                    plan = plan_batch(s2, calendar_name="office", calendar=WITH_HOLIDAY)
                with s2.begin():
                    results.append(write_batch(s2, plan))

        thread = threading.Thread(target=recompute)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "the batch waited for a case the engine holds"
    assert [(r.clocks, r.moved, r.skipped) for r in results] == [(2, 1, 1)]
    with sessions() as s, s.begin():  # the next pass takes the case the engine let go
        again = write_batch(s, plan_batch(s, calendar_name="office", calendar=WITH_HOLIDAY))
        assert (again.moved, again.skipped) == (1, 0)
    with sessions() as s:
        for case_id in (busy_id, free_id):
            moved = s.scalars(select(SlaClock).where(SlaClock.case_id == case_id)).one()
            assert moved.due_at == T0.replace(day=4, hour=17)
            assert s.scalars(select(WorkTask.due_at).where(WorkTask.case_id == case_id)).one() == moved.due_at
