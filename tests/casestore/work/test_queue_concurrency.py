"""Many agents calling get-next on one queue at once, with real commits: never the same task twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from casestore.db import translate_errors
from casestore.errors import StoreUnavailable
from casestore.work import queues

from .rows import T0, agent, assert_each_task_handed_out_once, case, definition, store_definition, task

TASKS = 120
AGENTS = 6


def test_concurrent_get_next_never_hands_out_a_task_twice(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition())
        cases_ = [case(s) for _ in range(10)]
        for i in range(TASKS):
            task(s, cases_[i % 10], urgency=i % 3)

    def work(n: int) -> list[int]:
        actor = agent(f"agent{n}", "complaints")
        got: list[int] = []
        while True:
            try:
                with translate_errors(), sessions() as s, s.begin():
                    t = queues.get_next(s, actor=actor, now=T0, max_active=TASKS)
                    if t is None:
                        return got
                    got.append(t.id)
            except StoreUnavailable:  # a lock timeout under load: the caller tries again
                continue

    with ThreadPoolExecutor(AGENTS) as pool:
        results = list(pool.map(work, range(AGENTS)))
    assert_each_task_handed_out_once(sessions, results, TASKS)
