"""get-next on SQLite through the driver (``casestore.db.sqlite_immediate`` + ``queues.next_claim_sqlite``,
what ``casework serve`` runs): the same claim, lease, audit event, cap and visibility as the ORM
path, and never the same task twice, with threads that wait for the writer lock and threads that
are turned away from it (``wait=False``, as get-next on the event loop) side by side."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import WriterBusy, session_factory, sqlite_immediate, translate_errors
from casestore.errors import Conflict, StoreUnavailable
from casestore.models import AuditEvent
from casestore.work import pick, queues
from casestore.work.actor import Actor
from casestore.work.models import WorkTask

from .rows import T0, agent, assert_each_task_handed_out_once, case, definition, store_definition, task

TASKS = 120
AGENTS = 6


@pytest.fixture
def sqlite_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "sqlite":
        pytest.skip("the driver path is SQLite's")
    return engine


def _next(engine: Engine, actor: Actor, *, max_active: int = 5, wait: bool = True) -> pick.ClaimedRow | None:
    reads = session_factory(engine.execution_options(sqlite_begin="DEFERRED"))
    with translate_errors(), sqlite_immediate(engine, wait=wait) as cursor:
        return queues.next_claim_sqlite(cursor, engine=engine, read_sessions=reads, actor=actor, now=T0,
                                        max_active=max_active, may_rebuild=wait)


def test_the_driver_path_claims_as_the_orm_path_does(sqlite_engine: Engine, sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        mine = case(s)
        low, high = task(s, mine, urgency=1), task(s, mine, urgency=5)
        hidden = task(s, case(s, team="claims"), urgency=9)  # a case of another team, in alice's queue
    alice = agent("alice", "complaints")
    first = _next(sqlite_engine, alice)
    assert first is not None and first.task.id == high.id and first.case_ref == mine.ref
    assert first.case_type == "complaint"
    assert first.task.state == "active" and first.task.assignee == "alice" and first.task.lease_version == 1
    assert first.task.lease_expires_at == T0 + timedelta(minutes=30)
    second = _next(sqlite_engine, alice)
    assert second is not None and second.task.id == low.id
    assert _next(sqlite_engine, alice) is None, "the other team's case stays hidden"
    with pytest.raises(Conflict, match="holds 2 active task"):
        _next(sqlite_engine, alice, max_active=2)
    with sessions() as s:
        stored = s.get(WorkTask, high.id)
        assert stored is not None and stored.lease_expires_at == T0 + timedelta(minutes=30)
        assert stored.state == "active" and stored.assignee == "alice"
        assert s.get(WorkTask, hidden.id).state == "queued"  # type: ignore[union-attr]
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "task.claimed").order_by(AuditEvent.id)).all()
        assert [e.details["task_id"] for e in events] == [high.id, low.id]
        assert events[0].actor == "alice" and events[0].case_id == mine.id
        assert events[0].details == {"task_id": high.id, "task": high.name, "queue": "complaints", "how": "get_next",
                                     "lease_version": 1, "lease_expires_at": (T0 + timedelta(minutes=30)).isoformat()}
    # the task the driver path claimed reads back through the ORM path's own services
    with sessions() as s, s.begin():
        assert [t.id for t in queues.my_work(s, actor=alice)] == [high.id, low.id]
        queues.release(s, task_id=high.id, actor=alice)


def test_a_claimed_rows_fields_are_the_tasks_columns() -> None:
    assert pick.TaskRow._fields == tuple(c.key for c in WorkTask.__table__.c)


def test_a_definition_stored_meanwhile_is_seen_by_the_next_claim(sqlite_engine: Engine,
                                                                  sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        task(s, case(s), queue="complaints")
    assert _next(sqlite_engine, agent("alice", "complaints")) is not None
    with sessions() as s, s.begin():  # a new version puts the queue "triage" in alice's team
        store_definition(s, definition(version=2, queues={"complaints": "complaints", "triage": "complaints"}))
        task(s, case(s), queue="triage")
    with pytest.raises(WriterBusy):  # on the event loop: no rebuild there (it parses every definition)
        _next(sqlite_engine, agent("alice", "complaints"), wait=False)
    got = _next(sqlite_engine, agent("alice", "complaints"))
    assert got is not None and got.task.queue == "triage"


def test_concurrent_driver_get_next_never_hands_out_a_task_twice(sqlite_engine: Engine,
                                                                  sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        cases_ = [case(s) for _ in range(10)]
        for i in range(TASKS):
            task(s, cases_[i % 10], urgency=i % 3)
    turned_away = Counter[int]()

    def work(n: int) -> list[int]:
        actor = agent(f"agent{n}", "complaints")
        got: list[int] = []
        while True:
            try:
                claimed = _next(sqlite_engine, actor, max_active=TASKS, wait=n % 2 == 0)
            except WriterBusy:  # the event loop's case: the caller goes to a worker thread instead
                turned_away[n] += 1
                continue
            except StoreUnavailable:
                continue
            if claimed is None:
                return got
            got.append(claimed.task.id)

    with ThreadPoolExecutor(AGENTS) as pool:
        results = list(pool.map(work, range(AGENTS)))
    assert_each_task_handed_out_once(sessions, results, TASKS)


def test_wait_false_is_turned_away_at_once_while_another_transaction_writes(sqlite_engine: Engine,
                                                                             sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        task(s, case(s))
        task(s, case(s))
    assert _next(sqlite_engine, agent("alice", "complaints")) is not None  # builds this process's queue index
    other = sqlite_engine.connect()  # another writer holds the writer lock (as another process would)
    raw = other.connection.dbapi_connection
    assert raw is not None
    raw.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WriterBusy):
            _next(sqlite_engine, agent("alice", "complaints"), wait=False)
    finally:
        raw.execute("ROLLBACK")
        other.close()
    claimed = _next(sqlite_engine, agent("alice", "complaints"), wait=False)
    assert claimed is not None
