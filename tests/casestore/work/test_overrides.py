"""Supervisor overrides and the role x action matrix, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from casestore.errors import Conflict, Forbidden, InvalidInput
from casestore.models import Case
from casestore.work import engine, overrides
from casestore.work.actor import Actor
from casestore.work.permissions import allowed
from tests.casestore.work.engine_setup import (
    AGENT_ACTIONS,
    ALICE,
    BOB,
    CALS,
    HOUR,
    SUE,
    SUPERVISOR_ACTIONS,
    T0,
    case_type,
    claim,
    clock,
    events,
    finish,
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


CHECKED = case_type([
    {"name": "one", "tasks": [task("check", checklist=[{"name": "identity", "label": "Identity checked"}])]},
    {"name": "two", "tasks": [task("decide"), task("tell", after=["decide"])]},
], clocks=[{"name": "resolution", "duration": "10h"}])


def _overrides(case: Case, task_id: int) -> dict[str, Callable[..., Any]]:
    common: dict[str, Any] = {"calendars": CALS, "now": T0}
    return {
        "reassign": lambda s, actor, reason: overrides.reassign_task(s, task_id=task_id, to="bob", actor=actor,
                                                                     reason=reason, **common),
        "reassign_case": lambda s, actor, reason: overrides.reassign_case(s, ref=case.ref, to="bob", actor=actor,
                                                                          reason=reason, **common),
        "redirect": lambda s, actor, reason: overrides.redirect_task(s, task_id=task_id, queue="seniors", actor=actor,
                                                                     reason=reason, **common),
        "waive": lambda s, actor, reason: overrides.waive_item(s, task_id=task_id, item="identity", actor=actor,
                                                               reason=reason, **common),
        "skip": lambda s, actor, reason: overrides.skip_stage(s, ref=case.ref, stage="one", actor=actor,
                                                              reason=reason, **common),
        "reopen_stage": lambda s, actor, reason: overrides.reopen_stage(s, ref=case.ref, stage="one", actor=actor,
                                                                        reason=reason, **common),
        "pause": lambda s, actor, reason: overrides.pause_clock(s, ref=case.ref, clock="resolution", actor=actor,
                                                                reason=reason, **common),
        "change": lambda s, actor, reason: overrides.change_clock(s, ref=case.ref, clock="resolution", actor=actor,
                                                                  reason=reason, duration="1d", **common),
        "urgency": lambda s, actor, reason: overrides.raise_urgency(s, ref=case.ref, urgency=50, actor=actor,
                                                                    reason=reason, **common),
    }


@pytest.mark.parametrize("name", ["reassign", "reassign_case", "redirect", "waive", "skip", "reopen_stage", "pause",
                                  "change", "urgency"])
def test_an_agent_may_not_override_and_a_supervisor_needs_a_reason(session: Session, name: str) -> None:
    case = start(session, CHECKED)
    do = _overrides(case, open_task(session, case, "check").id)[name]
    with pytest.raises(Forbidden) as caught:
        do(session, ALICE, "because")
    assert caught.value.http_status == 403 and "ask a supervisor" in str(caught.value)
    for empty in ("", "   "):
        with pytest.raises(InvalidInput, match="an override needs a reason"):
            do(session, SUE, empty)
    before = len(events(session, case))
    do(session, SUE, "a good reason")
    overrides_written = [e for e in events(session, case)[before:] if e.details.get("override")]
    assert len(overrides_written) == 1
    event = overrides_written[0]
    assert (event.actor, event.reason) == ("sue", "a good reason")
    assert event.at == T0 and ("before" in event.details and "after" in event.details)


def test_the_matrix_comes_from_the_definition(session: Session) -> None:
    ct = case_type(roles={"agent": ["work_task", "waive_item"], "supervisor": ["work_task"]})
    assert allowed(ALICE, ct, "waive_item") and not allowed(SUE, ct, "waive_item")
    assert allowed(Actor(name="system", role="system"), ct, "reopen_case")
    assert not allowed(Actor(name="robot", role="integration"), ct, "work_task")
    assert not allowed(Actor(name="x", role="agent", disabled=True), ct, "work_task")


def test_a_waived_item_no_longer_holds_completion_back(session: Session) -> None:
    case = start(session, CHECKED)
    t = claim(session, case, "check")
    with pytest.raises(InvalidInput, match="identity"):
        engine.complete_task(session, task_id=t.id, code="done", actor=ALICE, calendars=CALS, now=T0)
    overrides.waive_item(session, task_id=t.id, item="identity", actor=SUE, reason="known customer", calendars=CALS,
                         now=T0)
    assert t.checklist["identity"] == {"state": "waived", "by": "sue", "at": T0.isoformat(), "reason": "known customer"}
    engine.complete_task(session, task_id=t.id, code="done", actor=ALICE, calendars=CALS, now=T0)
    assert work(session, case).stage == "two"
    waived = events(session, case, "checklist.waived")
    assert len(waived) == 1 and waived[0].reason == "known customer" and waived[0].details["after"]["state"] == "waived"
    with pytest.raises(Conflict):
        overrides.waive_item(session, task_id=t.id, item="identity", actor=SUE, reason="again", calendars=CALS, now=T0)


def test_reassign_puts_the_task_in_front_of_the_user_until_released(session: Session) -> None:
    case = start(session, CHECKED)
    t = claim(session, case, "check")
    version = t.lease_version
    overrides.reassign_task(session, task_id=t.id, to="bob", actor=SUE, reason="alice is off", calendars=CALS, now=T0)
    assert (t.state, t.assignee, t.lease_expires_at, t.lease_version) == ("active", "bob", None, version + 1)
    event = events(session, case, "task.reassigned")[0]
    assert event.reason == "alice is off"
    assert event.details["before"]["assignee"] == "alice" and event.details["after"]["assignee"] == "bob"
    with pytest.raises(InvalidInput, match="may not see case"):
        overrides.reassign_task(session, task_id=t.id, to="eve", actor=SUE, reason="x", calendars=CALS, now=T0)
    overrides.waive_item(session, task_id=t.id, item="identity", actor=SUE, reason="x", calendars=CALS, now=T0)
    engine.complete_task(session, task_id=t.id, code="done", actor=BOB, calendars=CALS, now=T0 + 5 * HOUR)


def test_redirect_moves_a_task_to_another_queue_of_the_type(session: Session) -> None:
    case = start(session, CHECKED)
    t = claim(session, case, "check")
    with pytest.raises(InvalidInput, match="use one of: complaints, seniors"):
        overrides.redirect_task(session, task_id=t.id, queue="nowhere", actor=SUE, reason="x", calendars=CALS, now=T0)
    overrides.redirect_task(session, task_id=t.id, queue="seniors", actor=SUE, reason="needs a senior", calendars=CALS,
                            now=T0)
    assert (t.state, t.queue, t.assignee) == ("queued", "seniors", None)


def test_skip_and_reopen_a_stage(session: Session) -> None:
    case = start(session, CHECKED)
    with pytest.raises(InvalidInput, match="comes after the current stage"):
        overrides.reopen_stage(session, ref=case.ref, stage="two", actor=SUE, reason="x", calendars=CALS, now=T0)
    overrides.skip_stage(session, ref=case.ref, stage="one", actor=SUE, reason="checked by phone", calendars=CALS,
                         now=T0)
    assert states(session, case) == {"check": "skipped", "decide": "queued"}
    assert work(session, case).stage == "two"
    with pytest.raises(InvalidInput, match="not the current stage"):
        overrides.skip_stage(session, ref=case.ref, stage="one", actor=SUE, reason="x", calendars=CALS, now=T0)
    finish(session, case, "decide")
    # back to stage two while tell is open: tell is cancelled, decide runs again (its old completion no longer counts)
    overrides.reopen_stage(session, ref=case.ref, stage="two", actor=SUE, reason="decided wrongly", calendars=CALS,
                           now=T0)
    assert [(t.iteration, t.state) for t in tasks(session, case, "decide")] == [(1, "completed"), (2, "queued")]
    assert [(t.iteration, t.state) for t in tasks(session, case, "tell")] == [(1, "cancelled")]
    finish(session, case, "decide")
    assert [(t.iteration, t.state) for t in tasks(session, case, "tell")] == [(1, "cancelled"), (2, "queued")]
    finish(session, case, "tell")
    assert work(session, case).stage is None
    actions = [e.action for e in events(session, case) if e.details.get("override")]
    assert actions == ["stage.skipped", "stage.reopened"]


def test_supervisor_clock_pause_resume_and_change(session: Session) -> None:
    case = start(session, CHECKED)
    overrides.pause_clock(session, ref=case.ref, clock="resolution", actor=SUE, reason="system outage",
                          calendars=CALS, now=T0 + 2 * HOUR)
    c = clock(session, case, "resolution")
    assert (c.state, c.used_seconds, c.due_at, c.next_fire_at) == ("paused", 7200, None, None)
    with pytest.raises(InvalidInput, match="not running"):
        overrides.pause_clock(session, ref=case.ref, clock="resolution", actor=SUE, reason="x", calendars=CALS,
                              now=T0 + 3 * HOUR)
    overrides.resume_clock(session, ref=case.ref, clock="resolution", actor=SUE, reason="back", calendars=CALS,
                           now=T0 + 5 * HOUR)
    assert (c.state, c.due_at) == ("running", T0 + 13 * HOUR)
    assert open_task(session, case, "check").due_at == T0 + 13 * HOUR  # the queue order follows the clock
    overrides.change_clock(session, ref=case.ref, clock="resolution", actor=SUE, reason="agreed an extension",
                           calendars=CALS, duration="20h", now=T0 + 6 * HOUR)
    assert (c.budget_seconds, c.used_seconds, c.due_at) == (20 * 3600, 3 * 3600, T0 + 23 * HOUR)
    overrides.change_clock(session, ref=case.ref, clock="resolution", actor=SUE, reason="customer asked",
                           calendars=CALS, due_at=T0 + 30 * HOUR, now=T0 + 6 * HOUR)
    assert c.due_at == T0 + 30 * HOUR and open_task(session, case, "check").due_at == T0 + 30 * HOUR
    with pytest.raises(InvalidInput, match="no clock 'nope'"):
        overrides.pause_clock(session, ref=case.ref, clock="nope", actor=SUE, reason="x", calendars=CALS, now=T0)


def test_reopen_a_closed_case(session: Session) -> None:
    case = start(session, CHECKED)
    claim(session, case, "check")
    engine.close_case(session, ref=case.ref, code="withdrawn", actor=ALICE, calendars=CALS, now=T0)
    with pytest.raises(Forbidden):
        overrides.reopen_case(session, ref=case.ref, actor=ALICE, reason="oops", calendars=CALS, now=T0)
    w = overrides.reopen_case(session, ref=case.ref, actor=SUE, reason="closed by mistake", calendars=CALS,
                              now=T0 + HOUR)
    assert (w.status, w.completion_code, w.closed_at, w.reopened, case.status) == ("in_progress", None, None, 1,
                                                                                    "open")
    assert [(t.iteration, t.state) for t in tasks(session, case, "check")] == [(1, "cancelled"), (2, "queued")]
    with pytest.raises(Conflict, match="not closed"):
        overrides.reopen_case(session, ref=case.ref, actor=SUE, reason="again", calendars=CALS, now=T0)


REOPENING = case_type(clocks=[
    {"name": "resolution", "duration": "10h"},                          # on_reopen: resume (the default)
    {"name": "fresh", "duration": "10h", "on_reopen": "restart"},
    {"name": "gone", "duration": "10h", "on_reopen": "stay_stopped"},
    {"name": "first", "duration": "10h", "stop_on": ["task:work", "case_closed"]},  # stopped before the close
], name="reopening")


def test_reopening_a_case_resumes_or_restarts_the_clocks_its_close_stopped(session: Session) -> None:
    case = start(session, REOPENING)
    finish(session, case, "work", now=T0 + HOUR)
    engine.close_case(session, ref=case.ref, code="resolved", actor=ALICE, calendars=CALS, now=T0 + 3 * HOUR)
    assert {n: clock(session, case, n).state for n in ("resolution", "fresh", "gone", "first")} == dict.fromkeys(
        ("resolution", "fresh", "gone", "first"), "stopped")
    overrides.reopen_case(session, ref=case.ref, actor=SUE, reason="customer disagrees", calendars=CALS,
                          now=T0 + 5 * HOUR)
    resumed, fresh = clock(session, case, "resolution"), clock(session, case, "fresh")
    assert (resumed.state, resumed.used_seconds) == ("running", 3 * 3600)
    assert resumed.due_at == T0 + 5 * HOUR + 7 * HOUR  # 7 of its 10 hours left, counted from the reopening
    assert resumed.next_fire_at is not None and resumed.stopped_at is None
    assert (fresh.state, fresh.used_seconds, fresh.due_at) == ("running", 0, T0 + 15 * HOUR)
    assert clock(session, case, "gone").state == "stopped"
    assert clock(session, case, "first").state == "stopped"  # its task stopped it before the case closed
    reopened = [(e.action, e.reason, (e.details or {}).get("clock")) for e in events(session, case)
                if e.action in ("clock.resumed", "clock.started") and e.reason == "case_reopened"]
    assert reopened == [("clock.resumed", "case_reopened", "resolution"), ("clock.started", "case_reopened", "fresh")]


def test_the_refusal_names_who_may_do_it_in_english() -> None:
    from casestore.work.permissions import require

    ct = case_type(roles={"agent": AGENT_ACTIONS, "supervisor": SUPERVISOR_ACTIONS, "admin": SUPERVISOR_ACTIONS})
    with pytest.raises(Forbidden, match="ask an admin or a supervisor to do it"):
        require(ALICE, ct, "reassign")


def test_a_new_due_time_outside_working_hours_is_refused_saying_so() -> None:
    from casestore.work import clocks
    from casestore.work.models import SlaClock
    from tests.casestore.work.calendars import ENGLAND, LONDON, at

    saturday = at(LONDON, 2026, 11, 28, 22)
    running = SlaClock(name="final_response", state="running", calendar="default", budget_seconds=4 * 3600,
                       used_seconds=3600, warn_percent=75, started_at=saturday, resumed_at=saturday)
    with pytest.raises(InvalidInput, match="no working time between now and 2026-11-28T22:05"):
        clocks.change(running, calendar=ENGLAND, now=saturday, due_at=saturday + timedelta(minutes=5))
    clocks.change(running, calendar=ENGLAND, now=saturday, due_at=at(LONDON, 2026, 11, 30, 10))
    assert (running.budget_seconds, running.due_at) == (2 * 3600, at(LONDON, 2026, 11, 30, 10))
