"""Two agents completing the last two tasks of a stage at the same moment, with real commits: the
second waits for the first (the case's work row is locked), so it sees both done and the next stage
starts once.  Without the lock each would see the other's task still open and the case would stick."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from casestore.models import AuditEvent
from casestore.work import engine as work_engine
from casestore.work import queues
from casestore.work.actor import SYSTEM
from casestore.work.models import CaseWork, WorkTask
from tests.casestore.work.engine_setup import ALICE, BOB, CALS, T0, case_type, new_case, people, register, task

CT = case_type([{"name": "one", "tasks": [task("a"), task("b")]}, {"name": "two", "tasks": [task("c")]}])


def _waiting_on_a_lock(engine_: Engine) -> bool:
    with engine_.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()")).scalar())


def test_completions_of_one_case_take_turns(sessions: sessionmaker[Session], engine: Engine) -> None:
    with sessions() as s, s.begin():
        people(s)
        register(s, CT)
        case = new_case(s)
        work_engine.start_case(s, case=case, case_type=CT, actor=SYSTEM, calendars=CALS, now=T0)
        ids = {t.name: t.id for t in s.scalars(select(WorkTask).where(WorkTask.case_id == case.id))}
        queues.claim(s, task_id=ids["a"], actor=ALICE, now=T0)
        queues.claim(s, task_id=ids["b"], actor=BOB, now=T0)
        case_id = case.id

    errors: list[BaseException] = []

    def bob() -> None:
        try:
            with sessions() as s, s.begin():
                work_engine.complete_task(s, task_id=ids["b"], code="done", actor=BOB, calendars=CALS, now=T0)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    first = sessions()
    with first.begin():
        work_engine.complete_task(first, task_id=ids["a"], code="done", actor=ALICE, calendars=CALS, now=T0)
        second = threading.Thread(target=bob)
        second.start()
        if engine.dialect.name == "postgresql":  # make sure bob is inside, waiting for alice's lock
            deadline = time.monotonic() + 30
            while not _waiting_on_a_lock(engine) and time.monotonic() < deadline:
                time.sleep(0.02)
    first.close()
    second.join()
    assert not errors, errors

    with sessions() as s:
        work = s.get(CaseWork, case_id)
        assert work is not None and work.stage == "two"
        names = [t.name for t in s.scalars(select(WorkTask).where(WorkTask.case_id == case_id)
                                           .order_by(WorkTask.id))]
        assert names == ["a", "b", "c"]
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id))]
        assert actions.count("stage.completed") == 1 and actions.count("stage.started") == 2
