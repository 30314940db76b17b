"""A stateful property test of leases: get-next (also as two interleaved sessions), claim, release,
renew, lease expiry, completion and reassignment, on real SQLite and PostgreSQL.

Invariants after every step:

* at most one live assignment per task: no two agents were handed the same task without it
  coming back in between, and the one that was is the task's assignee in the store;
* one audit event per transition: the task's audit trail has exactly the transitions that
  happened, and replayed in order it is a valid life (a claim only of a waiting task, a release,
  expiry or completion only of a held one).

The same machine, run with ``NaiveGetNext`` (read the head, then update it without a lock or a
guard, as two sessions interleave), must be caught: ``test_a_naive_get_next_is_caught``.

Interleaving: ``start_get_next`` begins one agent's get-next and ``finish_get_next`` ends it, with
other agents' get-next calls in between.  On PostgreSQL the real service runs in a transaction
held open across those steps (its row locks are what keeps the others off); SQLite's writer lock
would make the second session wait for the first, which one thread cannot show, so there the real
service runs whole at ``finish_get_next`` (the order the lock imposes).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from casestore import audit, users
from casestore.db import make_engine, session_factory
from casestore.errors import CaseStoreError
from casestore.models import AuditEvent, User
from casestore.work import engine, overrides, queues
from casestore.work.actor import SYSTEM, Actor
from casestore.work.models import WorkTask

from .engine_setup import CALS, T0, case_type, new_case, register

TASK_ACTIONS = ("task.claimed", "task.released", "task.lease_expired", "task.completed", "task.reassigned")
LEASE = timedelta(minutes=30)
BIG_CAP = 1000
_example = itertools.count(1)


@dataclass
class Pending:
    agent: str
    session: Session | None = None  # PostgreSQL: the open transaction of the real service
    task: WorkTask | None = None
    picked: int | None = None       # the naive variant: the head it read


class GetNext:
    """How the machine's agents get the next task; the real service by default."""

    holds_transaction: bool = True

    def start(self, sessions: sessionmaker[Session], actor: Actor, now: datetime) -> Pending:
        if sessions.kw["bind"].dialect.name != "postgresql":
            return Pending(actor.name)
        session = sessions()
        session.begin()
        try:
            task = queues.get_next(session, actor=actor, now=now, max_active=BIG_CAP)
        except BaseException:
            session.rollback()
            session.close()
            raise
        return Pending(actor.name, session=session, task=task)

    def finish(self, sessions: sessionmaker[Session], actor: Actor, now: datetime, pending: Pending) -> WorkTask | None:
        if pending.session is None:
            with sessions() as s, s.begin():
                return queues.get_next(s, actor=actor, now=now, max_active=BIG_CAP)
        with pending.session as s:
            s.commit()
        return pending.task

    def whole(self, sessions: sessionmaker[Session], actor: Actor, now: datetime) -> WorkTask | None:
        with sessions() as s, s.begin():
            return queues.get_next(s, actor=actor, now=now, max_active=BIG_CAP)


class NaiveGetNext(GetNext):
    """Deliberately wrong: read the best waiting task, then (later) update it by id, unguarded."""

    def start(self, sessions: sessionmaker[Session], actor: Actor, now: datetime) -> Pending:
        with sessions() as s:
            queue = [q.name for q in queues.queue_index(s).workable_by(actor)]
            head = s.scalar(select(WorkTask.id).where(WorkTask.queue.in_(queue), WorkTask.state == "queued")
                            .order_by(WorkTask.urgency.desc(), WorkTask.due_at, WorkTask.id).limit(1))
        return Pending(actor.name, picked=head)

    def finish(self, sessions: sessionmaker[Session], actor: Actor, now: datetime, pending: Pending) -> WorkTask | None:
        if pending.picked is None:
            return None
        with sessions() as s, s.begin():
            task = s.get(WorkTask, pending.picked)
            assert task is not None
            task.state, task.assignee, task.lease_expires_at = "active", actor.name, now + LEASE
            task.lease_version += 1
            audit.record(s, actor=actor.name, action="task.claimed", case_id=task.case_id,
                         details={"task_id": task.id, "lease_version": task.lease_version})
            return task

    def whole(self, sessions: sessionmaker[Session], actor: Actor, now: datetime) -> WorkTask | None:
        return self.finish(sessions, actor, now, self.start(sessions, actor, now))


@dataclass
class Model:
    holder: dict[int, set[str]] = field(default_factory=dict)   # task -> agents handed it and not since parted
    lease: dict[int, datetime | None] = field(default_factory=dict)
    version: dict[int, int] = field(default_factory=dict)
    transitions: dict[int, int] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)

    def handed(self, task: WorkTask, agent: str) -> None:
        self.holder[task.id].add(agent)
        self.lease[task.id], self.version[task.id] = task.lease_expires_at, task.lease_version
        self.transitions[task.id] += 1

    def parted(self, task_id: int) -> None:
        self.holder[task_id] = set()
        self.lease[task_id] = None
        self.transitions[task_id] += 1


def machine(sessions: sessionmaker[Session], get_next: GetNext) -> type[RuleBasedStateMachine]:
    class Leases(RuleBasedStateMachine):
        agents: ClassVar[tuple[str, ...]] = ("a", "b", "c")

        def __init__(self) -> None:
            super().__init__()
            self.n = next(_example)
            self.now = T0
            self.model = Model()
            self.pending: Pending | None = None
            self.actors: dict[str, Actor] = {}
            self.task_ids: list[int] = []
            self.case_id = 0

        @initialize()
        def setup(self) -> None:
            team, queue = f"t{self.n}", f"q{self.n}"
            ct = case_type([{"name": "handle", "tasks": [{"name": f"w{i}", "queue": queue, "codes": ["done"]}
                                                         for i in range(4)]}],
                           name=f"lease{self.n}", queues=[{"name": queue, "team": team, "lease": "30m"}])
            with sessions() as s, s.begin():
                register(s, ct)
                if s.scalar(select(User.id).where(User.name == "sue")) is None:
                    users.add_user(s, name="sue", role="supervisor")
                for a in self.agents:
                    self.actors[a] = Actor(name=f"{a}{self.n}", role="agent", teams=(team,))
                    users.add_user(s, name=f"{a}{self.n}", role="agent", teams=[team])
                case = new_case(s, team=team)
                engine.start_case(s, case=case, case_type=ct, actor=SYSTEM, calendars=CALS, now=T0)
                self.task_ids = list(s.scalars(select(WorkTask.id).where(WorkTask.case_id == case.id)))
                self.case_id = case.id
            for tid in self.task_ids:
                self.model.holder[tid], self.model.lease[tid] = set(), None
                self.model.version[tid], self.model.transitions[tid] = 0, 0

        def teardown(self) -> None:
            if self.pending is not None and self.pending.session is not None:
                self.pending.session.rollback()
                self.pending.session.close()

        def _try(self, op: Callable[[Session], Any]) -> Any:
            try:
                with sessions() as s, s.begin():
                    return op(s)
            except CaseStoreError:
                return None

        def _holder(self, tid: int) -> str | None:
            held = self.model.holder[tid]
            return next(iter(held)) if len(held) == 1 else None

        # -- rules -------------------------------------------------------------------------------

        @precondition(lambda self: self.pending is None)
        @rule(agent=st.sampled_from(agents))
        def get_next_whole(self, agent: str) -> None:
            task = get_next.whole(sessions, self.actors[agent], self.now)
            if task is not None:
                self.model.handed(task, agent)

        @precondition(lambda self: self.pending is None)
        @rule(agent=st.sampled_from(agents))
        def start_get_next(self, agent: str) -> None:
            self.pending = get_next.start(sessions, self.actors[agent], self.now)
            self.pending.agent = agent

        @precondition(lambda self: self.pending is not None)
        @rule(agent=st.sampled_from(agents))
        def other_get_next(self, agent: str) -> None:
            assert self.pending is not None
            if agent == self.pending.agent:
                return
            task = get_next.whole(sessions, self.actors[agent], self.now)
            if task is not None:
                self.model.handed(task, agent)

        @precondition(lambda self: self.pending is not None)
        @rule()
        def finish_get_next(self) -> None:
            assert self.pending is not None
            pending, self.pending = self.pending, None
            agent = pending.agent
            task = get_next.finish(sessions, self.actors[agent], self.now, pending)
            if task is not None:
                self.model.handed(task, agent)

        @precondition(lambda self: self.pending is None)
        @rule(agent=st.sampled_from(agents), i=st.integers(0, 3))
        def claim(self, agent: str, i: int) -> None:
            tid = self.task_ids[i]
            task = self._try(lambda s: queues.claim(s, task_id=tid, actor=self.actors[agent], now=self.now,
                                                    max_active=BIG_CAP))
            if task is not None and agent not in self.model.holder[tid]:
                self.model.handed(task, agent)

        @precondition(lambda self: self.pending is None)
        @rule(agent=st.sampled_from(agents), i=st.integers(0, 3))
        def release(self, agent: str, i: int) -> None:
            tid = self.task_ids[i]
            if self._try(lambda s: queues.release(s, task_id=tid, actor=self.actors[agent])) is not None:
                assert agent in self.model.holder[tid], "released a task the agent was never handed"
                self.model.parted(tid)

        @precondition(lambda self: self.pending is None)
        @rule(agent=st.sampled_from(agents), i=st.integers(0, 3))
        def renew(self, agent: str, i: int) -> None:
            tid = self.task_ids[i]
            task = self._try(lambda s: queues.renew(s, task_id=tid, actor=self.actors[agent],
                                                    lease_version=self.model.version[tid], now=self.now))
            if task is not None:
                assert self._holder(tid) == agent
                self.model.lease[tid] = task.lease_expires_at

        @precondition(lambda self: self.pending is None)
        @rule(agent=st.sampled_from(agents), i=st.integers(0, 3))
        def complete(self, agent: str, i: int) -> None:
            tid = self.task_ids[i]
            done = self._try(lambda s: engine.complete_task(s, task_id=tid, code="done", actor=self.actors[agent],
                                                            calendars=CALS, lease_version=self.model.version[tid],
                                                            now=self.now))
            if done is not None:
                assert self._holder(tid) == agent, "completed by someone who does not hold it"
                self.model.parted(tid)
                self.model.done.add(tid)

        @precondition(lambda self: self.pending is None)
        @rule(to=st.sampled_from(agents), i=st.integers(0, 3))
        def reassign(self, to: str, i: int) -> None:
            tid = self.task_ids[i]
            task = self._try(lambda s: overrides.reassign_task(s, task_id=tid, to=self.actors[to].name,
                                                               actor=Actor(name="sue", role="supervisor"),
                                                               reason="cover", calendars=CALS, now=self.now))
            if task is not None:
                self.model.holder[tid] = set()
                self.model.handed(task, to)

        @precondition(lambda self: self.pending is None)
        @rule(minutes=st.sampled_from([5, 20, 31]))
        def advance(self, minutes: int) -> None:
            self.now += timedelta(minutes=minutes)

        @precondition(lambda self: self.pending is None)
        @rule()
        def reap(self) -> None:
            due = [t for t in self.task_ids if self.model.holder[t] and self.model.lease[t] is not None
                   and self.model.lease[t] <= self.now]  # type: ignore[operator]
            n = self._try(lambda s: queues.reap_expired_leases(s, now=self.now, limit=100))
            assert n is not None and n >= len(due)  # earlier examples' tasks may expire too
            for t in due:
                self.model.parted(t)

        # -- invariants ----------------------------------------------------------------------------

        @invariant()
        def at_most_one_live_assignment(self) -> None:
            if not self.task_ids:
                return
            with sessions() as s:
                rows = {t.id: t for t in s.scalars(select(WorkTask).where(WorkTask.id.in_(self.task_ids)))}
            for tid in self.task_ids:
                handed = self.model.holder[tid]
                assert len(handed) <= 1, f"task {tid} was handed to {sorted(handed)} at once"
                row = rows[tid]
                if handed:
                    assert row.state == "active" and row.assignee == self.actors[next(iter(handed))].name
                else:  # an open transaction's claim is not committed: the store shows the task waiting
                    assert row.state != "active", f"task {tid} is held by {row.assignee}, who was never handed it"

        @invariant()
        def one_audit_event_per_transition(self) -> None:
            if not self.task_ids:
                return
            with sessions() as s:
                events = list(s.scalars(select(AuditEvent).where(AuditEvent.case_id == self.case_id,
                                                                 AuditEvent.action.in_(TASK_ACTIONS))
                                        .order_by(AuditEvent.id)))
            for tid in self.task_ids:
                trail = [e.action for e in events if e.details["task_id"] == tid]
                assert len(trail) == self.model.transitions[tid], f"task {tid}: {trail}"
                held = False
                for action in trail:
                    if action == "task.claimed":
                        assert not held, f"task {tid} claimed while held: {trail}"
                    elif action != "task.reassigned":
                        assert held, f"task {tid}: {action} of a task nobody held: {trail}"
                    held = action in ("task.claimed", "task.reassigned")

    return Leases


PROFILE = settings(max_examples=25, stateful_step_count=20, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture
def store(db_url: str) -> Any:
    eng: Engine = make_engine(db_url)
    yield session_factory(eng)
    eng.dispose()


def test_leases_keep_one_holder_and_one_event_per_transition(store: sessionmaker[Session]) -> None:
    run_state_machine_as_test(machine(store, GetNext()), settings=PROFILE)


def test_a_naive_get_next_is_caught(store: sessionmaker[Session]) -> None:
    """The failing example is not shrunk here (each shrink step is a run on the real store)."""
    with pytest.raises(AssertionError, match=r"handed to|claimed while held|never handed"):
        run_state_machine_as_test(machine(store, NaiveGetNext()),
                                  settings=settings(PROFILE, phases=[Phase.explicit, Phase.generate]))

