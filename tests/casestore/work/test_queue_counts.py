"""The queue counts the database keeps (triggers appending deltas, folded by the clock loop) agree
with a real COUNT over the tasks: after every kind of change, and at every snapshot while agents
claim, release, complete and redirect at once and a folder folds, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import translate_errors
from casestore.errors import StoreUnavailable
from casestore.models import Case
from casestore.work import queue_counts, queue_reads, queues
from casestore.work.models import WorkTask

from .rows import T0, agent, case, definition, store_definition, task

QUEUES = {"complaints": "complaints", "complaints_senior": "seniors"}
REAL = ("SELECT t.queue, COALESCE(c.team, CASE WHEN c.restricted THEN '~restricted' ELSE '' END), "
        "SUM(CASE WHEN t.state = 'queued' THEN 1 ELSE 0 END), SUM(CASE WHEN t.state = 'active' THEN 1 ELSE 0 END) "
        "FROM tasks t JOIN cases c ON c.id = t.case_id WHERE t.state IN ('queued', 'active') GROUP BY 1, 2")
KEPT = ("SELECT queue, team_key, SUM(queued), SUM(active) FROM (SELECT queue, team_key, queued, active "
        "FROM queue_counts UNION ALL SELECT queue, team_key, queued, active FROM queue_count_deltas) x "
        "GROUP BY 1, 2")


def real_and_kept(s: Session) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[tuple[str, str], tuple[int, int]]]:
    real = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in s.execute(text(REAL))}
    kept = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in s.execute(text(KEPT)) if (r[2], r[3]) != (0, 0)}
    return real, kept


def test_counts_follow_every_kind_of_change_and_respect_visibility(session: Session) -> None:
    s = session
    store_definition(s, definition(queues=QUEUES))
    mine, other, public, secret = case(s), case(s, team="claims"), case(s, team=None), case(s, team=None,
                                                                                          restricted=True)
    tasks = [task(s, c) for c in (mine, mine, other, public, secret)]
    task(s, mine, state="completed")  # never counted
    alice, sue = agent("alice", "complaints"), agent("sue", role="supervisor")
    claimed = queues.get_next(s, actor=alice, now=T0)
    assert claimed is not None
    s.execute(update(WorkTask).where(WorkTask.id == tasks[2].id).values(queue="complaints_senior"))  # a redirect
    s.execute(update(Case).where(Case.id == public.id).values(team="claims"))  # the case moves team
    s.execute(update(WorkTask).where(WorkTask.id == tasks[4].id).values(state="cancelled"))
    s.execute(delete(Case).where(Case.id == secret.id))  # its (now cancelled) task goes with it
    s.flush()
    real, kept = real_and_kept(s)
    assert kept == real == {("complaints", "complaints"): (1, 1), ("complaints", "claims"): (1, 0),
                            ("complaints_senior", "claims"): (1, 0)}
    assert queue_counts.fold(s) > 0 and s.scalar(text("SELECT COUNT(*) FROM queue_count_deltas")) == 0
    assert real_and_kept(s) == (real, real)
    for_alice = {q.queue: (q.waiting, q.active) for q in queue_reads.queue_summaries(s, actor=alice, now=T0)}
    assert for_alice == {"complaints": (1, 1)}  # the claims team's cases are not hers to count
    for_sue = {q.queue: (q.waiting, q.active, q.open) for q in queue_reads.queue_summaries(s, actor=sue, now=T0)}
    assert for_sue == {"complaints": (2, 1, 3), "complaints_senior": (1, 0, 1)}
    s.execute(delete(Case).where(Case.id == other.id))  # a case with an open task deleted
    assert real_and_kept(s)[1] == real_and_kept(s)[0]


def test_counts_equal_a_real_count_at_every_snapshot_under_concurrent_changes(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        store_definition(s, definition(queues=QUEUES))
        cases_ = [case(s, team=("complaints", "claims", None)[i % 3]) for i in range(12)]
        for i in range(150):
            task(s, cases_[i % 12], queue=("complaints", "complaints_senior")[i % 2])
    stop = threading.Event()
    mismatches: list[str] = []
    snapshots = [0]

    def agent_work(n: int) -> None:
        actor = agent(f"agent{n}", "complaints", "claims", "seniors", role="supervisor")
        rng = random.Random(n)
        for _ in range(25):
            try:
                with translate_errors(), sessions() as s, s.begin():
                    t = queues.get_next(s, actor=actor, now=T0, max_active=1000)
                    if t is None:
                        return
                    roll = rng.random()
                    if roll < 0.3:
                        queues.release(s, task_id=t.id, actor=actor)
                    elif roll < 0.6:
                        s.execute(update(WorkTask).where(WorkTask.id == t.id).values(state="completed"))
                    elif roll < 0.8:
                        s.execute(update(WorkTask).where(WorkTask.id == t.id)
                                  .values(state="queued", assignee=None, queue="complaints_senior"))
            except StoreUnavailable:  # a lock timeout under load: tried again
                continue

    def folder() -> None:
        while not stop.is_set():
            try:
                with translate_errors(), sessions() as s, s.begin():
                    queue_counts.fold(s, limit=7)
            except StoreUnavailable:
                continue

    def checker() -> None:
        while not stop.is_set():
            with sessions() as s:  # one transaction, left by rolling back
                if s.get_bind().dialect.name == "postgresql":  # both reads from one snapshot
                    s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                real, kept = real_and_kept(s)
                snapshots[0] += 1
                if real != kept:
                    mismatches.append(f"{real} != {kept}")

    background = [threading.Thread(target=folder), threading.Thread(target=checker)]
    for t in background:
        t.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(agent_work, range(4)))
    finally:
        stop.set()
        for t in background:
            t.join()
    assert not mismatches, mismatches[:3]
    assert snapshots[0] > 0
    with sessions() as s:
        real, kept = real_and_kept(s)
        assert real == kept
        states = {r[0]: r[1] for r in s.execute(select(WorkTask.state, text("COUNT(*)")).group_by(WorkTask.state))}
        assert states.get("completed", 0) > 0 and states.get("active", 0) > 0  # the mix happened
