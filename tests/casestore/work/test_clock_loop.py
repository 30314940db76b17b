"""The clock loop: warn and breach fire once each, escalations apply, and never twice, even with two
sweepers or a restart in between."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import make_engine, session_factory
from casestore.models import AuditEvent
from casestore.work import queues
from casestore.work.clock_loop import sweep
from casestore.work.models import CaseWork, SlaClock, WorkTask

from .rows import T0, agent, case, clock, definition, store_definition, task

ESCALATIONS: list[dict[str, Any]] = [
    {"clock": "first_response", "on": "warn", "actions": [{"raise_urgency": 10, "notify_role": "supervisor"}]},
    {"clock": "first_response", "on": "breach",
     "actions": [{"raise_urgency": 20, "move_to_queue": "complaints_senior"}, {"unassign": True}]},
]
WARN, DUE = T0 + timedelta(hours=3), T0 + timedelta(hours=4)


def actions(session: Session) -> list[str]:
    return [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action.startswith(("sla.", "case.urgency", "task.moved", "task.unassigned"))]


@pytest.fixture
def s(session: Session) -> Session:
    store_definition(session, definition(escalations=ESCALATIONS))
    return session


def test_nothing_due_fires_nothing(s: Session) -> None:
    clock(s, case(s))
    result = sweep(s, now=WARN - timedelta(seconds=1))
    assert (result.clocks, result.warned, result.breached, result.more) == (0, 0, 0, False)
    assert actions(s) == []


def test_warn_then_breach_fire_once_each_with_their_escalations(s: Session) -> None:
    c = case(s)
    sla = clock(s, c)
    waiting, held = task(s, c), task(s, c)
    other_case_task = task(s, case(s))
    queues.claim(s, task_id=held.id, actor=agent("alice"), now=T0)

    warned = sweep(s, now=WARN)
    assert (warned.clocks, warned.warned, warned.breached, warned.actions) == (1, 1, 0, 1)
    s.refresh(sla)
    assert (sla.warned_at, sla.breached_at, sla.next_fire_at) == (WARN, None, DUE)
    assert actions(s) == ["sla.warned", "sla.notify", "case.urgency_raised"]
    notify = s.scalars(select(AuditEvent).where(AuditEvent.action == "sla.notify")).one()
    assert notify.details == {"role": "supervisor", "clock": "first_response", "event": "warn"}
    assert notify.case_id == c.id and notify.actor == "system"
    assert [t.urgency for t in s.scalars(select(WorkTask).order_by(WorkTask.id))] == [10, 10, 0]
    assert sweep(s, now=WARN + timedelta(minutes=30)).clocks == 0, "the warning fired already"

    breached = sweep(s, now=DUE + timedelta(seconds=5))
    assert (breached.warned, breached.breached, breached.actions) == (0, 1, 2)
    s.refresh(sla)
    assert (sla.breached_at, sla.next_fire_at) == (DUE + timedelta(seconds=5), None)
    assert s.get(CaseWork, c.id).urgency == 30  # type: ignore[union-attr]
    for t in (waiting, held):
        s.refresh(t)
        assert (t.queue, t.state, t.assignee, t.urgency) == ("complaints_senior", "queued", None, 30)
    s.refresh(other_case_task)
    assert (other_case_task.queue, other_case_task.urgency) == ("complaints", 0)
    assert actions(s)[3:] == ["sla.breached", "case.urgency_raised", "task.moved", "task.moved", "task.unassigned"]
    unassigned = s.scalars(select(AuditEvent).where(AuditEvent.action == "task.unassigned")).one()
    assert unassigned.details["assignee"] == "alice" and unassigned.details["task_id"] == held.id
    assert sweep(s, now=DUE + timedelta(days=30)).clocks == 0
    assert len(actions(s)) == 8


def test_a_loop_that_was_down_fires_both_events_in_one_sweep(s: Session) -> None:
    c = case(s)
    clock(s, c)
    task(s, c)
    result = sweep(s, now=DUE + timedelta(hours=6))
    assert (result.warned, result.breached, result.actions) == (1, 1, 3)
    assert actions(s) == ["sla.warned", "sla.breached", "sla.notify", "case.urgency_raised", "task.moved"]
    assert s.get(CaseWork, c.id).urgency == 30  # type: ignore[union-attr]


def test_batches_and_clocks_that_are_not_running(s: Session) -> None:
    clocks = [clock(s, case(s)) for _ in range(5)]
    clocks[0].state = "paused"  # a stray fire time on a paused clock is cleared, not fired
    s.flush()
    first = sweep(s, now=WARN, limit=3)
    assert (first.clocks, first.more) == (3, True)
    rest = sweep(s, now=WARN, limit=3)
    assert (rest.clocks, rest.more, first.warned + rest.warned) == (2, False, 4)
    s.refresh(clocks[0])
    assert (clocks[0].warned_at, clocks[0].next_fire_at) == (None, None)


def test_a_case_type_that_is_not_stored_still_fires_without_escalations(s: Session) -> None:
    c = case(s, case_type="unknown_type")
    clock(s, c)
    result = sweep(s, now=WARN)
    assert (result.warned, result.actions) == (1, 0)
    event = s.scalars(select(AuditEvent).where(AuditEvent.action == "sla.warned")).one()
    assert "not stored" in event.details["note"]


def _setup(sessions: sessionmaker[Session], n: int) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition(escalations=ESCALATIONS))
        for _ in range(n):
            c = case(s)
            clock(s, c)
            task(s, c)


def _count(sessions: sessionmaker[Session], action: str) -> int:
    with sessions() as s:
        return sum(1 for e in s.scalars(select(AuditEvent)) if e.action == action)


def test_two_sweepers_at_once_fire_each_event_once(engine: Engine, sessions: sessionmaker[Session]) -> None:
    _setup(sessions, 6)
    second: list[int] = []

    def other_sweeper() -> None:
        with sessions() as s2, s2.begin():  # SQLite: waits for the writer lock; PostgreSQL: skips locked clocks
            second.append(sweep(s2, now=DUE).clocks)

    with sessions() as s1, s1.begin():
        assert sweep(s1, now=DUE).clocks == 6
        thread = threading.Thread(target=other_sweeper)
        thread.start()
        if engine.dialect.name == "postgresql":
            thread.join(30)
            assert second == [0], "the other sweeper skipped the clocks this one holds"
    thread.join(30)
    assert second == [0]
    assert _count(sessions, "sla.warned") == _count(sessions, "sla.breached") == 6
    assert _count(sessions, "task.moved") == 6 and _count(sessions, "sla.notify") == 6


def test_a_restarted_sweeper_does_not_fire_again(db_url: str, sessions: sessionmaker[Session]) -> None:
    _setup(sessions, 3)
    with sessions() as s, s.begin():
        assert sweep(s, now=WARN).warned == 3
    crashed = make_engine(db_url)  # a sweeper that dies before committing: nothing of its work stays
    with session_factory(crashed)() as s:
        s.begin()
        assert sweep(s, now=DUE).breached == 3
        s.rollback()
    crashed.dispose()
    restarted = make_engine(db_url)
    with session_factory(restarted)() as s, s.begin():
        result = sweep(s, now=DUE + timedelta(minutes=1))
        assert (result.warned, result.breached) == (0, 3)
    with session_factory(restarted)() as s, s.begin():
        assert sweep(s, now=DUE + timedelta(days=1)).clocks == 0
    restarted.dispose()
    assert _count(sessions, "sla.warned") == _count(sessions, "sla.breached") == 3
    with sessions() as s:
        assert {c.next_fire_at for c in s.scalars(select(SlaClock))} == {None}


@pytest.mark.parametrize("state", ["running", "paused", "stopped"])
@pytest.mark.parametrize(("warned", "breached"), [(False, False), (True, False), (True, True)])  # warn fires first
def test_the_loop_schedules_the_next_moment_as_the_clock_transitions_do(state: str, warned: bool,
                                                                         breached: bool) -> None:
    from casestore.work.clock_loop import _NEXT, _next_moment
    from casestore.work.clocks import next_fire

    running = state == "running"  # ``clocks.schedule`` keeps warn and due times only on running clocks
    c = SlaClock(state=state, warn_at=WARN if running else None, due_at=DUE if running else None,
                 warned_at=WARN if warned else None, breached_at=DUE if breached else None)
    column = _NEXT[_next_moment(state, c.warned_at, c.breached_at, c.warn_at)]
    assert (getattr(c, column.name) if column is not None else None) == next_fire(c)


def test_the_sweep_leaves_a_case_the_engine_holds_for_the_next_sweep(engine: Engine,
                                                                    sessions: sessionmaker[Session]) -> None:
    """PostgreSQL: the engine locks a case's work row, then tasks, then clocks; the sweep takes the
    clock first, so it must not wait for the work row (the two would deadlock).  SQLite's writer
    lock runs them one after the other instead."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    _setup(sessions, 2)
    with sessions() as s:
        busy, free = sorted(s.scalars(select(CaseWork.case_id)))
    swept: list[int] = []
    with sessions() as holder, holder.begin():
        holder.get(CaseWork, busy, with_for_update=True)  # as the engine's Run.load does

        def sweeper() -> None:
            with sessions() as s2, s2.begin():
                swept.append(sweep(s2, now=WARN).warned)

        thread = threading.Thread(target=sweeper)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "the sweep waited for a case the engine holds"
    assert swept == [1]
    with sessions() as s, s.begin():
        assert sweep(s, now=WARN).warned == 1, "the held case's clock fires at the next sweep"
    with sessions() as s:
        assert {c.case_id for c in s.scalars(select(SlaClock)) if c.warned_at is not None} == {busy, free}


def test_the_events_the_database_writes_carry_the_same_details(s: Session) -> None:
    """The sweep's audit events are INSERT ... SELECT statements with details built by the
    database: each names the clock, the moment (ISO 8601, UTC), the task and its queues."""
    c = case(s)
    sla = clock(s, c)
    waiting, held = task(s, c), task(s, c)
    queues.claim(s, task_id=held.id, actor=agent("bob"), now=T0)
    sweep(s, now=DUE + timedelta(hours=6))
    events = {(e.action, e.details.get("task_id")): e for e in s.scalars(select(AuditEvent))
              if e.action.startswith(("sla.", "case.", "task.moved", "task.unassigned"))}
    breached = events[("sla.breached", None)]
    assert breached.case_id == c.id and breached.actor == "system" and breached.reason == ""
    assert breached.details["clock"] == "first_response" and breached.details["clock_id"] == sla.id
    assert breached.details["escalation_actions"] == 2
    assert datetime.fromisoformat(breached.details["due_at"]) == DUE
    assert datetime.fromisoformat(breached.details["warn_at"]) == WARN
    assert events[("case.urgency_raised", None)].details == {"by": 30, "clock": "first_response", "event": "breach"}
    for t in (waiting, held):
        assert events[("task.moved", t.id)].details == {
            "task_id": t.id, "task": t.name, "from": "complaints", "to": "complaints_senior",
            "clock": "first_response", "event": "breach"}
    assert events[("task.unassigned", held.id)].details == {
        "task_id": held.id, "task": held.name, "queue": "complaints_senior", "assignee": "bob",
        "lease_version": held.lease_version, "clock": "first_response", "event": "breach"}
    assert ("task.unassigned", waiting.id) not in events
    assert len({e.at for e in events.values()}) == 1, "one moment for the whole batch"
