"""The engine's rules, each on SQLite and PostgreSQL: starting, entry criteria, repeats, checklists,
codes, stages, stuck cases, closing, claims, and one audit event per transition."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import Case
from casestore.work import engine, overrides
from casestore.work.actor import SYSTEM
from casestore.work.models import NO_DUE, SlaClock
from tests.casestore.work.engine_setup import (
    ALICE,
    BOB,
    CALS,
    EVE,
    HOUR,
    SUE,
    T0,
    case_type,
    claim,
    clock,
    event_count,
    events,
    finish,
    new_case,
    open_task,
    people,
    start,
    states,
    task,
    tasks,
    work,
)


@pytest.fixture(autouse=True)
def _people(session: Session) -> None:
    people(session)


def _actions(session: Session, case: Case, since: int = 0) -> list[str]:
    return [e.action for e in events(session, case)][since:]


def test_start_enables_the_first_stages_entry_tasks_and_starts_its_clocks(session: Session) -> None:
    ct = case_type([
        {"name": "intake", "tasks": [task("triage", sets_status="in_progress"), task("check"),
                                     task("assess", after=["triage"]),
                                     task("vip", required=False, when='case.subject == "vip"')]},
        {"name": "resolve", "tasks": [task("respond")]},
    ], clocks=[{"name": "first_response", "duration": "4h", "stop_on": ["task:triage"]},
               {"name": "later", "duration": "1h", "start_on": "stage:intake"}])
    case = start(session, ct)
    assert states(session, case) == {"triage": "queued", "check": "queued"}
    w = work(session, case)
    assert (w.stage, w.status, w.case_type, w.type_version) == ("intake", "in_progress", "complaint", 1)
    assert case.status == "open"
    first = clock(session, case, "first_response")
    assert (first.state, first.due_at, first.warn_at, first.next_fire_at) == ("running", T0 + 4 * HOUR,
                                                                             T0 + 3 * HOUR, T0 + 3 * HOUR)
    assert all(t.due_at == T0 + 4 * HOUR and t.queue == "complaints" for t in tasks(session, case))
    assert _actions(session, case) == ["work.started", "clock.started", "stage.started", "task.enabled",
                                       "status.changed", "task.enabled"]


def test_after_when_and_required_if(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [
        task("intake"),
        task("assess", after=["intake"], codes=["uphold", "reject"]),
        task("vip", after=["intake"], required=False, when='case.subject == "vip"'),
        task("refund", after=["assess"], required=False, required_if='tasks.assess == "uphold"'),
    ]}, {"name": "close", "tasks": [task("letter")]}])
    upheld = start(session, ct)
    finish(session, upheld, "intake")
    assert states(session, upheld) == {"intake": "completed", "assess": "queued"}  # vip: its condition fails
    finish(session, upheld, "assess", "uphold")
    assert states(session, upheld)["refund"] == "queued"
    assert work(session, upheld).stage == "handle"  # refund is required now
    finish(session, upheld, "refund")
    assert work(session, upheld).stage == "close"

    rejected = start(session, ct.model_copy(update={"version": 2}), subject="vip")
    finish(session, rejected, "intake")
    assert states(session, rejected) == {"intake": "completed", "assess": "queued", "vip": "queued"}
    finish(session, rejected, "vip")
    finish(session, rejected, "assess", "reject")
    # refund is optional and (not upheld) not required: enabled but the stage waits for no open task
    assert states(session, rejected)["refund"] == "queued"
    finish(session, rejected, "refund")
    assert work(session, rejected).stage == "close"


def test_an_optional_task_whose_condition_fails_does_not_hold_the_stage(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [task("intake"),
                                                 task("vip", after=["intake"], required=False,
                                                      when='case.subject == "vip"')]},
                    {"name": "close", "tasks": [task("letter")]}])
    case = start(session, ct)
    finish(session, case, "intake")
    assert work(session, case).stage == "close"
    assert "vip" not in states(session, case)


def test_a_repeating_task_runs_again_up_to_its_cap(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [
        task("ask", codes=["answered", "more"], repeat_on=["more"], max_repeats=2),
        task("decide", after=["ask"]),
    ]}])
    case = start(session, ct)
    finish(session, case, "ask", "more")
    assert [(t.iteration, t.state) for t in tasks(session, case, "ask")] == [(1, "completed"), (2, "queued")]
    assert "decide" not in states(session, case)  # ask runs again before anything after it
    finish(session, case, "ask", "more")
    assert [(t.iteration, t.state) for t in tasks(session, case, "ask")] == [(1, "completed"), (2, "completed")]
    assert states(session, case)["decide"] == "queued"  # the cap is reached: no third iteration


def test_completing_needs_the_required_checklist_items(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [task("check", checklist=[
        {"name": "identity", "label": "Identity checked"},
        {"name": "address", "label": "Address confirmed"},
        {"name": "extra", "label": "Nice to have", "required": False}])]}])
    case = start(session, ct)
    t = claim(session, case, "check")
    engine.tick(session, task_id=t.id, item="identity", actor=ALICE, calendars=CALS, now=T0)
    with pytest.raises(InvalidInput) as caught:
        engine.complete_task(session, task_id=t.id, code="done", actor=ALICE, calendars=CALS, now=T0)
    assert caught.value.http_status == 422
    assert "address (Address confirmed)" in str(caught.value) and "identity" not in str(caught.value)
    with pytest.raises(InvalidInput, match="no checklist item 'colour'; its items: identity, address, extra"):
        engine.tick(session, task_id=t.id, item="colour", actor=ALICE, calendars=CALS, now=T0)
    engine.tick(session, task_id=t.id, item="address", actor=ALICE, calendars=CALS, now=T0)
    engine.tick(session, task_id=t.id, item="address", actor=ALICE, calendars=CALS, done=False, now=T0)
    assert "address" not in t.checklist
    engine.tick(session, task_id=t.id, item="address", actor=ALICE, calendars=CALS, now=T0)
    done = engine.complete_task(session, task_id=t.id, code="done", actor=ALICE, calendars=CALS, now=T0)
    assert done.state == "completed" and done.checklist["identity"]["by"] == "alice"
    assert [e.action for e in events(session, case) if e.action.startswith("checklist.")] == [
        "checklist.ticked", "checklist.ticked", "checklist.unticked", "checklist.ticked"]


def test_a_code_the_task_does_not_allow_is_refused(session: Session) -> None:
    case = start(session, case_type([{"name": "handle", "tasks": [task("assess", codes=["uphold", "reject"])]}]))
    t = claim(session, case, "assess")
    with pytest.raises(InvalidInput, match="code 'maybe' is not allowed for task assess; use one of: uphold, reject"):
        engine.complete_task(session, task_id=t.id, code="maybe", actor=ALICE, calendars=CALS, now=T0)
    assert open_task(session, case, "assess").state == "active"


def test_stages_run_in_order_and_a_stage_completes_when_its_required_tasks_are_done(session: Session) -> None:
    ct = case_type([
        {"name": "one", "tasks": [task("a"), task("b", required=False)]},
        {"name": "two", "tasks": [task("c")]},
        {"name": "three", "tasks": [task("d")]},
    ], clocks=[{"name": "stage_one", "duration": "2h", "stop_on": ["stage:one"]}])
    case = start(session, ct)
    finish(session, case, "a")
    assert work(session, case).stage == "one"  # b is optional but open: the stage waits for it
    finish(session, case, "b")
    assert work(session, case).stage == "two"
    assert clock(session, case, "stage_one").state == "stopped"
    finish(session, case, "c")
    finish(session, case, "d")
    w = work(session, case)
    assert w.stage is None and w.status == "open"
    assert [e.details["stage"] for e in events(session, case, "stage.completed")] == ["one", "two", "three"]
    assert [e.details["stage"] for e in events(session, case, "stage.started")] == ["one", "two", "three"]
    assert engine.stuck(session, case) == []


def test_stuck_names_what_blocks_the_case(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [
        task("review", required=False, when="case.urgency > 5"),
        task("approve", after=["review"]),
    ]}])
    case = start(session, ct)
    assert states(session, case) == {}
    assert engine.stuck(session, case) == [
        "task approve waits for review, which was skipped: its condition `case.urgency > 5` does not hold"]
    overrides.raise_urgency(session, ref=case.ref, urgency=10, actor=SUE, reason="unblock", calendars=CALS, now=T0)
    assert states(session, case) == {"review": "queued"}
    assert engine.stuck(session, case) == []


def test_stuck_after_a_skipped_dependency(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [task("review"), task("approve", after=["review"])]}])
    case = start(session, ct)
    overrides.reopen_stage(session, ref=case.ref, stage="handle", actor=SUE, reason="start over", calendars=CALS,
                           now=T0)
    assert [(t.iteration, t.state) for t in tasks(session, case, "review")] == [(1, "cancelled"), (2, "queued")]
    assert engine.stuck(session, case) == []


def test_close_with_a_completion_code(session: Session) -> None:
    ct = case_type(clocks=[{"name": "resolution", "duration": "5d"}])
    case = start(session, ct)
    claim(session, case, "work")
    with pytest.raises(InvalidInput, match="use one of: resolved, withdrawn"):
        engine.close_case(session, ref=case.ref, code="fixed", actor=ALICE, calendars=CALS, now=T0)
    w = engine.close_case(session, ref=case.ref, code="resolved", actor=ALICE, calendars=CALS, reason="sorted",
                          now=T0 + HOUR)
    assert (w.status, w.completion_code, w.closed_at) == ("closed", "resolved", T0 + HOUR)
    assert case.status == "closed"
    assert states(session, case) == {"work": "cancelled"}
    res = clock(session, case, "resolution")
    assert (res.state, res.used_seconds, res.next_fire_at) == ("stopped", 3600, None)
    assert _actions(session, case)[-3:] == ["task.cancelled", "clock.stopped", "case.closed"]
    with pytest.raises(Conflict):
        engine.close_case(session, ref=case.ref, code="resolved", actor=ALICE, calendars=CALS, now=T0)
    with pytest.raises(Conflict, match="reopen it first"):
        engine.set_status(session, ref=case.ref, status="in_progress", actor=ALICE, calendars=CALS, now=T0)


def test_a_stale_or_expired_claim_cannot_complete(session: Session) -> None:
    case = start(session, case_type())
    t = claim(session, case, "work")
    held = t.lease_version
    overrides.reassign_task(session, task_id=t.id, to="bob", actor=SUE, reason="alice is off", calendars=CALS,
                            now=T0)
    with pytest.raises(Conflict, match=f"your claim on task {t.id} expired or was taken over; get it again") as c:
        engine.complete_task(session, task_id=t.id, code="done", actor=ALICE, lease_version=held, calendars=CALS,
                             now=T0)
    assert c.value.http_status == 409
    with pytest.raises(Conflict):  # bob holds it, but not with the version alice had
        engine.complete_task(session, task_id=t.id, code="done", actor=BOB, lease_version=held, calendars=CALS,
                             now=T0)
    engine.complete_task(session, task_id=t.id, code="done", actor=BOB, lease_version=held + 1, calendars=CALS,
                         now=T0)

    other = start(session, case_type(version=2))
    t2 = claim(session, other, "work")
    assert t2.lease_expires_at is not None
    with pytest.raises(Conflict, match="expired or was taken over"):
        engine.complete_task(session, task_id=t2.id, code="done", actor=ALICE, calendars=CALS,
                             now=t2.lease_expires_at)
    with pytest.raises(Conflict, match="waiting in queue complaints"):
        unclaimed = start(session, case_type(version=3))
        engine.complete_task(session, task_id=open_task(session, unclaimed, "work").id, code="done", actor=ALICE,
                             calendars=CALS, now=T0)


def test_tasks_of_cases_the_actor_may_not_see_are_not_found(session: Session) -> None:
    case = start(session, case_type())
    t = open_task(session, case, "work")
    with pytest.raises(NotFound, match=f"no task {t.id}"):
        engine.complete_task(session, task_id=t.id, code="done", actor=EVE, calendars=CALS, now=T0)
    with pytest.raises(NotFound, match=f"no case {case.ref}"):
        engine.close_case(session, ref=case.ref, code="resolved", actor=EVE, calendars=CALS, now=T0)
    with pytest.raises(NotFound, match="no case NOPE-1"):
        engine.close_case(session, ref="NOPE-1", code="resolved", actor=ALICE, calendars=CALS, now=T0)


def test_completing_makes_the_agent_the_cases_owner_once(session: Session) -> None:
    ct = case_type([{"name": "handle", "tasks": [task("a"), task("b", after=["a"])]}])
    case = start(session, ct)
    finish(session, case, "a", actor=ALICE)
    finish(session, case, "b", actor=BOB)
    assert work(session, case).assignee == "alice"
    assert [(e.details["to"]) for e in events(session, case, "case.assigned")] == ["alice"]


def test_one_audit_event_per_transition(session: Session) -> None:
    ct = case_type([
        {"name": "one", "tasks": [task("ask", codes=["info_requested", "done"],
                                       status_on_complete={"info_requested": "awaiting_customer"},
                                       checklist=[{"name": "called", "label": "Called the customer"}])]},
        {"name": "two", "tasks": [task("decide")]},
    ], clocks=[{"name": "resolution", "duration": "5d"}])
    case = start(session, ct)
    assert event_count(session, case) == len(_actions(session, case)) == 4
    t = claim(session, case, "ask")
    engine.tick(session, task_id=t.id, item="called", actor=ALICE, calendars=CALS, now=T0)
    engine.tick(session, task_id=t.id, item="called", actor=ALICE, calendars=CALS, now=T0)  # no change: no event
    engine.complete_task(session, task_id=t.id, code="info_requested", actor=ALICE, calendars=CALS,
                         note="asked for the receipt", now=T0 + HOUR / 3)
    assert _actions(session, case, 4) == [
        "task.claimed", "checklist.ticked", "task.completed", "note.added", "case.assigned", "status.changed",
        "clock.paused", "stage.completed", "stage.started", "task.enabled"]
    assert clock(session, case, "resolution").used_seconds == 1200


def test_system_completes_without_a_claim_and_open_tasks_carry_urgency(session: Session) -> None:
    case = start(session, case_type([{"name": "handle", "tasks": [task("a"), task("b")]}]))
    overrides.raise_urgency(session, ref=case.ref, urgency=40, actor=SUE, reason="VIP", calendars=CALS, now=T0)
    assert {t.urgency for t in tasks(session, case)} == {40}
    engine.complete_task(session, task_id=open_task(session, case, "a").id, code="done", actor=SYSTEM,
                         calendars=CALS, now=T0)
    assert states(session, case) == {"a": "completed", "b": "queued"}
    assert all(t.due_at == NO_DUE for t in tasks(session, case))


def test_refresh_task_order_follows_clocks_and_urgency(session: Session) -> None:
    case = start(session, case_type(clocks=[{"name": "resolution", "duration": "5h"}]))
    w = work(session, case)
    w.urgency = 7
    c = clock(session, case, "resolution")
    c.due_at = T0 + 2 * HOUR
    session.flush()
    engine.refresh_task_order(session, case_id=case.id)
    t = open_task(session, case, "work")
    session.refresh(t)
    assert (t.urgency, t.due_at) == (7, T0 + 2 * HOUR)


def test_a_case_whose_last_stage_completes_closes_by_itself_when_its_type_says_so(session: Session) -> None:
    ct = case_type(clocks=[{"name": "resolution", "duration": "5d"}],
                   close_when_done=[{"code": "withdrawn", "when": 'tasks.work == "dropped"'}, {"code": "resolved"}],
                   stages=[{"name": "handle", "tasks": [task("work", codes=["done", "dropped"])]}])
    case = start(session, ct)
    finish(session, case, "work", "done", now=T0 + HOUR)
    w = work(session, case)
    assert (w.status, w.completion_code, w.closed_at, w.stage) == ("closed", "resolved", T0 + HOUR, None)
    assert case.status == "closed"
    assert clock(session, case, "resolution").state == "stopped"
    closed = events(session, case, "case.closed")[-1]
    assert closed.actor == "system" and closed.details["auto"] is True and "close_when_done" in closed.reason
    assert [e.actor for e in events(session, case, "clock.stopped")] == ["system"]
    other = start(session, case_type(version=2, close_when_done=[
        {"code": "withdrawn", "when": 'tasks.work == "dropped"'}, {"code": "resolved"}],
        stages=[{"name": "handle", "tasks": [task("work", codes=["done", "dropped"])]}]))
    finish(session, other, "work", "dropped")
    assert work(session, other).completion_code == "withdrawn"


def test_a_case_whose_last_stage_completes_with_no_rule_holding_is_ready_to_close(session: Session) -> None:
    from casestore.work import case_lists

    ct = case_type(close_when_done=[{"code": "resolved", "when": 'tasks.work == "fixed"'}],
                   stages=[{"name": "handle", "tasks": [task("work", codes=["done", "fixed"])]}])
    case = start(session, ct)
    hidden = new_case(session, team="claims")
    engine.start_case(session, case=hidden, case_type=ct, actor=SYSTEM, calendars=CALS, now=T0)
    assert case_lists.ready_to_close_count(session, SUE) == 0
    finish(session, case, "work", "done")
    engine.complete_task(session, task_id=open_task(session, hidden, "work").id, code="done", actor=SYSTEM,
                         calendars=CALS, now=T0)
    w = work(session, case)
    assert w.status != "closed" and w.stage is None
    assert events(session, case, "case.closed") == []
    ready = case_lists.list_cases(session, ALICE, case_lists.parse_filter({"status": "ready_to_close"}))
    assert [c.ref for c in ready.cases] == [case.ref]  # not the claims team's case, which alice may not see
    assert case_lists.ready_to_close_count(session, SUE) == 2
    assert case_lists.ready_to_close_count(session, EVE) == 1
    engine.close_case(session, ref=case.ref, code="resolved", actor=ALICE, calendars=CALS, now=T0)
    assert case_lists.list_cases(session, ALICE, case_lists.parse_filter({"status": "ready_to_close"})).cases == []


@pytest.mark.parametrize(("review", "answer", "closed_with"), [
    ("answer", "answered", "answered"), ("no_action", None, "no_action_needed"), ("reclassify", None, None)])
def test_the_shipped_general_type_closes_with_its_outcome_or_waits_ready_to_close(
        session: Session, review: str, answer: str | None, closed_with: str | None) -> None:
    from casestore.work.loader import SHIPPED_DIR, load_case_types

    ct = load_case_types(SHIPPED_DIR)["general"].case_type
    case = start(session, ct)

    def complete(name: str, code: str) -> None:
        row = open_task(session, case, name)
        for item in ct.task(name).checklist:
            if item.required:
                engine.tick(session, task_id=row.id, item=item.name, actor=SYSTEM, calendars=CALS, now=T0)
        engine.complete_task(session, task_id=row.id, code=code, actor=SYSTEM, calendars=CALS, now=T0 + HOUR)

    complete("review", review)
    if answer is not None:
        complete("respond", answer)
    w = work(session, case)
    assert w.stage is None
    if closed_with is None:  # a reclassified enquiry: a person opens the right case, then closes this one
        assert w.status != "closed" and states(session, case) == {"review": "completed"}
    else:
        assert (w.status, w.completion_code) == ("closed", closed_with)
        assert {c.state for c in session.scalars(select(SlaClock).where(SlaClock.case_id == case.id))} == {"stopped"}
