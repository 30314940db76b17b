"""get-next on PostgreSQL as one call of ``casework_get_next`` (migration 0016) in autocommit:
two agents at once never get the same task, the cap and the per-agent lock hold across calls,
visibility is the same as the two-statement path's, and a queue index older than the stored
definitions is noticed and rebuilt.  Each test runs twice: through a ``Session`` in autocommit
(``next_claim_in_one_statement``) and on the driver's cursor (``next_claim_pg``, what ``casework
serve`` runs), which must behave the same."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import driver_cursor, session_factory, translate_errors
from casestore.errors import Conflict
from casestore.models import AuditEvent
from casestore.work import queues
from casestore.work.models import WorkTask

from .rows import T0, agent, case, definition, store_definition, task

TASKS = 60


Claimer = Callable[[str, tuple[str, ...], int], "int | None"]


@pytest.fixture(params=["session", "driver"])
def autocommit(engine: Engine, request: pytest.FixtureRequest) -> Claimer:
    """get-next for an agent of some teams with a cap: the claimed task's id, or None."""
    if engine.dialect.name != "postgresql":
        pytest.skip("casework_get_next is PostgreSQL's (SQLite's get-next runs under its writer lock)")
    sessions = session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
    reads = session_factory(engine)

    def by_session(name: str, teams: tuple[str, ...], cap: int) -> int | None:
        with translate_errors(), sessions() as s:
            claimed = queues.next_claim_in_one_statement(s, actor=agent(name, *teams), now=T0, max_active=cap)
            return claimed.task.id if claimed is not None else None

    def on_driver(name: str, teams: tuple[str, ...], cap: int) -> int | None:
        with translate_errors(), driver_cursor(engine) as cursor:
            row = queues.next_claim_pg(cursor, engine=engine, read_sessions=reads, actor=agent(name, *teams),
                                       now=T0, max_active=cap)
            return row.task.id if row is not None else None

    return by_session if request.param == "session" else on_driver


def _next(claimer: Claimer, name: str, *teams: str, cap: int = TASKS) -> int | None:
    return claimer(name, teams, cap)


def test_two_agents_at_once_never_get_the_same_task(sessions: sessionmaker[Session],
                                                    autocommit: Claimer) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        cases_ = [case(s) for _ in range(6)]
        for i in range(TASKS):
            task(s, cases_[i % 6], urgency=i % 3)
    start = threading.Barrier(2)
    got: dict[str, list[int]] = {"ann": [], "ben": []}

    def work(name: str) -> None:
        start.wait()
        while (tid := _next(autocommit, name, "complaints")) is not None:
            got[name].append(tid)

    agents = [threading.Thread(target=work, args=(n,)) for n in got]
    for a in agents:
        a.start()
    for a in agents:
        a.join(120)
    handed = got["ann"] + got["ben"]
    assert len(handed) == len(set(handed)) == TASKS
    assert got["ann"] and got["ben"], "both agents claimed"
    with sessions() as s:
        holders = {t.id: t.assignee for t in s.scalars(select(WorkTask))}
        claims = Counter(e.details["task_id"] for e in s.scalars(select(AuditEvent)) if e.action == "task.claimed")
    assert all(holders[tid] == name for name, ids in got.items() for tid in ids)
    assert len(claims) == TASKS and set(claims.values()) == {1}, "one audit event per claim"


def test_the_cap_holds_for_one_agent_calling_twice_at_once(sessions: sessionmaker[Session],
                                                           autocommit: Claimer) -> None:
    """The per-agent advisory lock, then the count under a fresh snapshot: two calls of one agent
    at cap - 1 cannot both pass."""
    with sessions() as s, s.begin():
        store_definition(s, definition())
        c = case(s)
        for _ in range(10):
            task(s, c)
    for _ in range(20):
        with sessions() as s, s.begin():  # every task back in the queue, none held
            for t in s.scalars(select(WorkTask)):
                t.state, t.assignee, t.lease_expires_at = "queued", None, None
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def call(start: threading.Barrier = start, outcomes: list[str] = outcomes) -> None:
            start.wait()
            try:
                outcomes.append("claimed" if _next(autocommit, "ann", "complaints", cap=1) else "none")
            except Conflict:
                outcomes.append("cap")

        callers = [threading.Thread(target=call) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
        assert sorted(outcomes) == ["cap", "claimed"]


def test_it_sees_the_same_cases_and_writes_the_same_event_as_the_two_statement_path(
        sessions: sessionmaker[Session], autocommit: Claimer) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        hidden = task(s, case(s, team="claims"), urgency=9)  # another team's case: never handed out
        visible = task(s, case(s), urgency=1)
        open_case = task(s, case(s, team=None), urgency=0)  # no team, unrestricted: anyone may see it
        task(s, case(s, team=None, restricted=True), urgency=5)  # restricted: hidden
    assert _next(autocommit, "ann", "complaints") == visible.id
    assert _next(autocommit, "ann", "complaints") == open_case.id
    assert _next(autocommit, "ann", "complaints") is None
    with sessions() as s:
        assert s.get(WorkTask, hidden.id).state == "queued"  # type: ignore[union-attr]
        claimed = s.get(WorkTask, visible.id)
        assert claimed is not None and claimed.assignee == "ann" and claimed.lease_version == 1
        assert claimed.lease_expires_at == T0 + timedelta(minutes=30)
        event = s.scalars(select(AuditEvent).where(AuditEvent.case_id == claimed.case_id)).one()
    assert event.action == "task.claimed" and event.actor == "ann"
    assert event.details == {"task_id": visible.id, "task": claimed.name, "queue": "complaints", "how": "get_next",
                             "lease_version": 1, "lease_expires_at": (T0 + timedelta(minutes=30)).isoformat()}


def test_a_queue_added_by_a_newer_definition_is_seen_at_once(sessions: sessionmaker[Session],
                                                            autocommit: Claimer) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
    assert _next(autocommit, "ann", "complaints", "billing") is None  # caches an index without 'billing'
    with sessions() as s, s.begin():
        store_definition(s, definition(version=2, queues={"complaints": "complaints", "billing": "billing"}),
                         loaded_at=T0 + timedelta(days=400))
        t = task(s, case(s, team="billing"), queue="billing")
    assert _next(autocommit, "ann", "billing") == t.id
