"""get-next, claim, release, renew, my work and the lease reaper on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.access import can_see_case
from casestore.errors import Conflict, Forbidden, NotFound
from casestore.models import AuditEvent
from casestore.work import queues
from casestore.work.actor import Actor
from casestore.work.visibility import visible_case_clause

from .rows import T0, agent, case, definition, store_definition, task, user_of

ALICE = agent("alice", "complaints")
BOB = agent("bob", "complaints")


@pytest.fixture
def s(session: Session) -> Session:
    store_definition(session, definition())
    return session


def audit_actions(session: Session, task_id: int) -> list[str]:
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    return [e.action for e in events if e.details.get("task_id") == task_id]


def test_get_next_orders_by_urgency_then_due_then_age(s: Session) -> None:
    c = case(s)
    late = task(s, c, due_at=T0 + timedelta(hours=9))
    soon = task(s, c, due_at=T0 + timedelta(hours=1))
    no_due_first = task(s, c)
    no_due_second = task(s, c)
    urgent = task(s, c, urgency=5)
    got = [queues.get_next(s, actor=ALICE, now=T0, max_active=10) for _ in range(5)]
    assert [t.id for t in got if t] == [urgent.id, soon.id, late.id, no_due_first.id, no_due_second.id]
    assert queues.get_next(s, actor=ALICE, now=T0, max_active=10) is None


def test_get_next_claims_with_a_lease_and_one_audit_event(s: Session) -> None:
    t = task(s, case(s))
    got = queues.get_next(s, actor=ALICE, now=T0)
    assert got is not None and got.id == t.id
    assert (got.state, got.assignee, got.lease_version) == ("active", "alice", 1)
    assert got.lease_expires_at == T0 + timedelta(minutes=30)
    assert audit_actions(s, t.id) == ["task.claimed"]
    event = s.scalars(select(AuditEvent)).one()
    assert event.case_id == t.case_id and event.actor == "alice" and event.details["queue"] == "complaints"


def test_get_next_looks_only_at_queues_of_the_actors_teams(s: Session) -> None:
    c = case(s)
    senior = task(s, c, queue="complaints_senior", urgency=50)
    mine = task(s, c, queue="complaints")
    assert queues.get_next(s, actor=ALICE, now=T0).id == mine.id  # type: ignore[union-attr]
    assert queues.get_next(s, actor=ALICE, now=T0) is None
    both = agent("carol", "complaints", "seniors")
    assert queues.get_next(s, actor=both, now=T0).id == senior.id  # type: ignore[union-attr]


def test_get_next_takes_the_best_head_across_queues(s: Session) -> None:
    c = case(s)
    task(s, c, queue="complaints", urgency=1)
    best = task(s, c, queue="complaints_senior", urgency=1, due_at=T0 + timedelta(hours=1))
    both = agent("carol", "complaints", "seniors")
    assert queues.get_next(s, actor=both, now=T0).id == best.id  # type: ignore[union-attr]


def test_get_next_skips_tasks_of_cases_the_actor_may_not_see(s: Session) -> None:
    other_team = task(s, case(s, team="claims"), urgency=9)
    restricted = task(s, case(s, team=None, restricted=True), urgency=8)
    open_to_all = task(s, case(s, team=None), urgency=1)
    got = queues.get_next(s, actor=ALICE, now=T0)
    assert got is not None and got.id == open_to_all.id
    assert queues.get_next(s, actor=ALICE, now=T0) is None
    sue = Actor(name="sue", role="supervisor", teams=("complaints",))
    assert [queues.get_next(s, actor=sue, now=T0).id for _ in range(2)] == [  # type: ignore[union-attr]
        other_team.id, restricted.id]


def test_roles_that_may_not_work_tasks_get_nothing(s: Session) -> None:
    task(s, case(s))
    robot = Actor(name="robot", role="integration", teams=("complaints",))
    assert queues.get_next(s, actor=robot, now=T0) is None
    with pytest.raises(Forbidden):
        queues.get_next(s, actor=Actor(name="gone", role="agent", teams=("complaints",), disabled=True), now=T0)


def test_the_cap_on_active_tasks_refuses_with_a_clear_message(s: Session) -> None:
    c = case(s)
    for _ in range(3):
        task(s, c)
    queues.get_next(s, actor=ALICE, now=T0, max_active=2)
    queues.get_next(s, actor=ALICE, now=T0, max_active=2)
    with pytest.raises(Conflict, match="holds 2 active task"):
        queues.get_next(s, actor=ALICE, now=T0, max_active=2)
    third = s.scalar(select(queues.WorkTask).where(queues.WorkTask.state == "queued"))
    assert third is not None
    with pytest.raises(Conflict, match="complete or release one"):
        queues.claim(s, task_id=third.id, actor=ALICE, now=T0, max_active=2)


def test_claim_a_named_task_and_the_conflicts(s: Session) -> None:
    c = case(s)
    t = task(s, c)
    got = queues.claim(s, task_id=t.id, actor=ALICE, now=T0)
    assert (got.state, got.assignee, got.lease_version) == ("active", "alice", 1)
    again = queues.claim(s, task_id=t.id, actor=ALICE, now=T0 + timedelta(minutes=1))
    assert again.lease_version == 1, "claiming what one holds changes nothing"
    with pytest.raises(Conflict, match="held by alice") as conflict:
        queues.claim(s, task_id=t.id, actor=BOB, now=T0)
    assert conflict.value.http_status == 409
    assert audit_actions(s, t.id) == ["task.claimed"]

    senior = task(s, c, queue="complaints_senior")
    with pytest.raises(Forbidden, match="worked by seniors"):
        queues.claim(s, task_id=senior.id, actor=BOB, now=T0)
    hidden = task(s, case(s, team="claims"))
    with pytest.raises(NotFound):
        queues.claim(s, task_id=hidden.id, actor=BOB, now=T0)
    with pytest.raises(NotFound):
        queues.claim(s, task_id=10**9, actor=BOB, now=T0)
    done = task(s, c, state="completed")
    with pytest.raises(Conflict, match="completed"):
        queues.claim(s, task_id=done.id, actor=BOB, now=T0)


def test_release_returns_the_task_to_its_queue(s: Session) -> None:
    t = task(s, case(s))
    queues.claim(s, task_id=t.id, actor=ALICE, now=T0)
    with pytest.raises(Conflict, match="held by alice, not by you"):
        queues.release(s, task_id=t.id, actor=BOB)
    back = queues.release(s, task_id=t.id, actor=ALICE, reason="wrong skills")
    assert (back.state, back.assignee, back.lease_expires_at) == ("queued", None, None)
    with pytest.raises(Conflict, match="not held by anyone"):
        queues.release(s, task_id=t.id, actor=ALICE)
    assert queues.get_next(s, actor=BOB, now=T0).id == t.id  # type: ignore[union-attr]
    assert audit_actions(s, t.id) == ["task.claimed", "task.released", "task.claimed"]


def test_renew_extends_the_lease_and_a_stale_version_is_refused(s: Session) -> None:
    t = task(s, case(s))
    got = queues.claim(s, task_id=t.id, actor=ALICE, now=T0)
    renewed = queues.renew(s, task_id=t.id, actor=ALICE, lease_version=got.lease_version,
                           now=T0 + timedelta(minutes=20))
    assert renewed.lease_expires_at == T0 + timedelta(minutes=50)
    with pytest.raises(Conflict, match="stale") as stale:
        queues.renew(s, task_id=t.id, actor=ALICE, lease_version=got.lease_version + 1, now=T0)
    assert stale.value.http_status == 409
    queues.release(s, task_id=t.id, actor=ALICE)
    queues.claim(s, task_id=t.id, actor=BOB, now=T0)
    with pytest.raises(Conflict, match="stale"):
        queues.renew(s, task_id=t.id, actor=ALICE, lease_version=1, now=T0)
    with pytest.raises(Conflict, match="ran out"):
        queues.renew(s, task_id=t.id, actor=BOB, lease_version=2, now=T0 + timedelta(hours=1))
    assert audit_actions(s, t.id) == ["task.claimed", "task.released", "task.claimed"], "renewals write nothing"


def test_an_expired_lease_returns_the_task_to_its_queue(s: Session) -> None:
    c = case(s)
    t, other = task(s, c), task(s, c)
    queues.claim(s, task_id=t.id, actor=ALICE, now=T0)
    queues.claim(s, task_id=other.id, actor=BOB, now=T0 + timedelta(minutes=20))
    assert queues.reap_expired_leases(s, now=T0 + timedelta(minutes=29), limit=10) == 0
    assert queues.reap_expired_leases(s, now=T0 + timedelta(minutes=30), limit=10) == 1
    s.refresh(t)
    assert (t.state, t.assignee, t.lease_expires_at) == ("queued", None, None)
    assert audit_actions(s, t.id) == ["task.claimed", "task.lease_expired"]
    expired = [e for e in s.scalars(select(AuditEvent)) if e.action == "task.lease_expired"]
    assert expired[0].details["assignee"] == "alice" and expired[0].actor == "system"
    assert queues.reap_expired_leases(s, now=T0 + timedelta(minutes=30), limit=10) == 0
    assert queues.get_next(s, actor=BOB, now=T0 + timedelta(minutes=31)).id == t.id  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="stale"):
        queues.renew(s, task_id=t.id, actor=ALICE, lease_version=1, now=T0 + timedelta(minutes=31))


def test_my_work_lists_what_the_actor_holds(s: Session) -> None:
    c = case(s)
    a, b, x = task(s, c), task(s, c, urgency=3), task(s, c)
    queues.claim(s, task_id=a.id, actor=ALICE, now=T0)
    queues.claim(s, task_id=b.id, actor=ALICE, now=T0)
    queues.claim(s, task_id=x.id, actor=BOB, now=T0)
    assert [t.id for t in queues.my_work(s, actor=ALICE)] == [b.id, a.id]


def test_the_queue_lease_comes_from_the_definition(session: Session) -> None:
    store_definition(session, definition(lease="2h"))
    t = task(session, case(session))
    assert queues.get_next(session, actor=ALICE, now=T0).lease_expires_at == T0 + timedelta(hours=2)  # type: ignore[union-attr]
    assert t.id


def test_the_sql_visibility_rule_is_can_see_case(s: Session) -> None:
    cases_ = [case(s, team=team, restricted=restricted) for team in ("complaints", "claims", None)
              for restricted in (False, True)]
    actors = [ALICE, agent("nobody", "x"), Actor(name="sue", role="supervisor", teams=()),
              Actor(name="ada", role="admin"), Actor(name="gone", role="agent", teams=("complaints",), disabled=True),
              Actor(name="robot", role="integration", teams=("claims",))]
    ids = [c.id for c in cases_]
    from casestore.models import Case

    for actor in actors:
        clause = visible_case_clause(actor)
        stmt = select(Case.id).where(Case.id.in_(ids))
        seen = set(s.scalars(stmt.where(clause) if clause is not None else stmt))
        assert seen == {c.id for c in cases_ if can_see_case(user_of(actor), c)}, actor
