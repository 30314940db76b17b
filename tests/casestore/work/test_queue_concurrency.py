"""Many agents calling get-next on one queue at once, with real commits: never the same task twice."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import translate_errors
from casestore.errors import StoreUnavailable
from casestore.models import AuditEvent
from casestore.work import queues
from casestore.work.models import WorkTask

from .rows import T0, agent, case, definition, store_definition, task

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
    handed = [tid for r in results for tid in r]
    assert len(handed) == len(set(handed)) == TASKS
    assert sum(1 for r in results if r) > 1, "the agents ran side by side"
    with sessions() as s:
        claims = Counter(e.details["task_id"] for e in s.scalars(select(AuditEvent))
                         if e.action == "task.claimed")
        assert len(claims) == TASKS and set(claims.values()) == {1}
        holders = {t.id: t.assignee for t in s.scalars(select(WorkTask))}
        for n, r in enumerate(results):
            assert all(holders[tid] == f"agent{n}" for tid in r)
