"""Queue counts, the paged list of a queue and task views."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from casestore.errors import Forbidden, InvalidInput, NotFound
from casestore.work import queue_reads, queues
from casestore.work.actor import Actor

from .rows import T0, agent, case, clock, definition, store_definition, task

ALICE = agent("alice", "complaints")
SUE = Actor(name="sue", role="supervisor", teams=())


@pytest.fixture
def s(session: Session) -> Session:
    store_definition(session, definition())
    return session


def test_queue_summaries_count_open_active_at_risk_and_breached(s: Session) -> None:
    calm, risky, late, hidden = case(s), case(s), case(s), case(s, team="claims")
    clock(s, risky, start=T0)  # 4 h: warns at 3 h, breaches at 4 h
    clock(s, late, start=T0 - timedelta(hours=5))
    clock(s, hidden, start=T0 - timedelta(hours=5))
    stopped = clock(s, calm, start=T0 - timedelta(hours=9))
    stopped.state, stopped.next_fire_at = "stopped", None
    oldest = task(s, calm, created_at=T0 - timedelta(days=2))
    task(s, risky, created_at=T0 - timedelta(days=1))
    task(s, late)
    task(s, late, queue="complaints_senior")
    task(s, hidden)
    queues.claim(s, task_id=oldest.id, actor=ALICE, now=T0)
    s.flush()

    now = T0 + timedelta(hours=3, minutes=30)
    mine = {q.queue: q for q in queue_reads.queue_summaries(s, actor=ALICE, now=now)}
    assert list(mine) == ["complaints"], "only the queues of alice's teams"
    q = mine["complaints"]
    assert (q.team, q.open, q.active, q.waiting, q.at_risk, q.breached) == ("complaints", 3, 1, 2, 1, 1)
    assert q.oldest_waiting == T0 - timedelta(days=1)

    every = {q.queue: q for q in queue_reads.queue_summaries(s, actor=SUE, now=now)}
    assert set(every) == {"complaints", "complaints_senior"}
    assert (every["complaints"].open, every["complaints"].breached) == (4, 2), "sue sees the claims team's case too"
    assert (every["complaints_senior"].open, every["complaints_senior"].breached) == (1, 1)
    before = {q.queue: q for q in queue_reads.queue_summaries(s, actor=ALICE, now=T0)}["complaints"]
    assert (before.at_risk, before.breached) == (0, 1)


def test_a_queue_with_no_tasks_is_listed_with_zeros(s: Session) -> None:
    q = queue_reads.queue_summaries(s, actor=ALICE, now=T0)[0]
    assert (q.queue, q.open, q.waiting, q.oldest_waiting) == ("complaints", 0, 0, None)
    assert queue_reads.queue_summaries(s, actor=agent("x", "nobody"), now=T0) == []


def test_queue_tasks_pages_in_get_next_order(s: Session) -> None:
    c = case(s)
    made = [task(s, c, urgency=u, due_at=T0 + timedelta(hours=h)) for u, h in
            [(0, 1), (2, 5), (0, 1), (1, 9), (2, 1), (0, 3), (1, 9)]]
    task(s, case(s, team="claims"), urgency=99)
    expected = [t.id for t in sorted(made, key=lambda t: (-t.urgency, t.due_at, t.id))]
    seen, after = [], None
    while True:
        page = queue_reads.queue_tasks(s, actor=ALICE, queue="complaints", after=after, limit=3)
        seen += [t.id for t in page.tasks]
        after = page.next_after
        if after is None:
            break
    assert seen == expected
    assert page.tasks[-1].case_ref == c.ref and page.tasks[-1].due_at is not None


def test_queue_tasks_refuses_what_is_not_yours_and_bad_cursors(s: Session) -> None:
    with pytest.raises(Forbidden):
        queue_reads.queue_tasks(s, actor=ALICE, queue="complaints_senior")
    with pytest.raises(NotFound):
        queue_reads.queue_tasks(s, actor=ALICE, queue="nope")
    with pytest.raises(InvalidInput, match="cursor"):
        queue_reads.queue_tasks(s, actor=ALICE, queue="complaints", after="garbage!")
    with pytest.raises(InvalidInput):
        queue_reads.queue_tasks(s, actor=ALICE, queue="complaints", limit=0)


def test_task_view_hides_tasks_of_cases_one_may_not_see(s: Session) -> None:
    t = task(s, case(s, team="claims"))
    with pytest.raises(NotFound):
        queue_reads.task_view(s, task_id=t.id, actor=ALICE)
    view = queue_reads.task_view(s, task_id=t.id, actor=SUE)
    assert (view.id, view.queue, view.due_at, view.kind) == (t.id, "complaints", None, "task")
