"""Inbound correspondence drives the work: new cases start their type, replies resume clocks and
bring the case back to its owner, closed cases reopen or get a linked case (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from casestore.models import Case
from casestore.work import engine, inbound
from casestore.work.setup import WorkSetup
from tests.casestore.work.engine_setup import (
    ALICE,
    CALS,
    HOUR,
    T0,
    case_type,
    claim,
    clock,
    events,
    finish,
    new_case,
    open_task,
    people,
    register,
    states,
    task,
    tasks,
    work,
)

COMPLAINT = case_type([
    {"name": "handle", "tasks": [
        task("ask", codes=["info_requested", "answered"], status_on_complete={"info_requested": "awaiting_customer"},
             repeat_on=["info_requested"], max_repeats=5),
        task("review_reply", required=False, max_repeats=3),
    ]},
    {"name": "respond", "tasks": [task("letter")]},
], clocks=[{"name": "resolution", "duration": "10h", "pause_in": ["awaiting_customer"]},
           {"name": "reply_handling", "duration": "2h", "start_on": "customer_replied",
            "stop_on": ["task:review_reply"]}],
   on_customer_reply={"review_task": "review_reply", "status": "in_progress"}, reopen_window="2d")
GENERAL = case_type([{"name": "handle", "tasks": [task("look")]}], name="general",
                    on_customer_reply={"raise_urgency": 10})


@pytest.fixture
def setup(session: Session) -> WorkSetup:
    people(session)
    for ct in (COMPLAINT, GENERAL):
        register(session, ct)
    return WorkSetup(case_types={"complaint": COMPLAINT, "general": GENERAL}, doc_types={"complaint": "complaint"},
                     calendars=CALS)


def _new(session: Session, setup: WorkSetup, doc_type: str = "complaint") -> Case:
    case = new_case(session)
    inbound.on_new_case(session, case=case, doc_type=doc_type, channel="email", setup=setup, now=T0)
    return case


def _reply(session: Session, setup: WorkSetup, case: Case, at: timedelta, item: str = "item-1") -> Case:
    return inbound.on_attached(session, case=case, item_id=item, setup=setup, now=T0 + at)[0]


def test_a_new_case_starts_the_type_its_document_type_maps_to(session: Session, setup: WorkSetup) -> None:
    assert work(session, _new(session, setup)).case_type == "complaint"
    other = _new(session, setup, doc_type="invoice")
    assert (work(session, other).case_type, states(session, other)) == ("general", {"look": "queued"})


def test_awaiting_the_customer_pauses_the_clock_and_a_reply_resumes_it(session: Session, setup: WorkSetup) -> None:
    case = _new(session, setup)
    finish(session, case, "ask", "info_requested", now=T0 + 2 * HOUR)  # claimed and completed at 11:00
    resolution = clock(session, case, "resolution")
    assert (work(session, case).status, resolution.state, resolution.used_seconds) == ("awaiting_customer",
                                                                                       "paused", 2 * 3600)
    assert case.status == "pending"
    assert open_task(session, case, "ask").iteration == 2  # asked again, up to five times

    before = len(events(session, case))
    _reply(session, setup, case, 5 * HOUR)
    assert [e.action for e in events(session, case)][before:] == [
        "customer.replied", "status.changed", "clock.resumed", "clock.started", "task.enabled"]
    assert work(session, case).status == "in_progress" and case.status == "open"
    assert (resolution.state, resolution.resumed_at, resolution.due_at) == ("running", T0 + 5 * HOUR, T0 + 13 * HOUR)
    handling = clock(session, case, "reply_handling")
    assert (handling.state, handling.due_at) == ("running", T0 + 7 * HOUR)
    review = open_task(session, case, "review_reply")
    assert (review.state, review.assignee, review.due_at) == ("active", "alice", T0 + 7 * HOUR)  # to the case's owner
    replied = events(session, case, "customer.replied")
    assert len(replied) == 1 and replied[0].item_id == "item-1"


def test_a_reply_while_a_review_waits_adds_none_and_a_later_one_runs_it_again(session: Session,
                                                                              setup: WorkSetup) -> None:
    case = _new(session, setup)
    _reply(session, setup, case, HOUR, "item-1")
    review = open_task(session, case, "review_reply")
    assert (review.state, review.assignee) == ("queued", None)  # nobody owns the case: into its queue
    _reply(session, setup, case, 2 * HOUR, "item-2")
    assert len(tasks(session, case, "review_reply")) == 1
    finish(session, case, "review_reply", now=T0 + 3 * HOUR)
    assert clock(session, case, "reply_handling").state == "stopped"
    _reply(session, setup, case, 4 * HOUR, "item-3")
    assert [(t.iteration, t.state, t.assignee) for t in tasks(session, case, "review_reply")] == [
        (1, "completed", "alice"), (2, "active", "alice")]
    assert clock(session, case, "reply_handling").state == "running"  # restarted by the new reply


def test_a_reply_can_raise_urgency(session: Session, setup: WorkSetup) -> None:
    case = _new(session, setup, doc_type="letter")
    _reply(session, setup, case, HOUR)
    assert work(session, case).urgency == 10 and open_task(session, case, "look").urgency == 10


def test_a_closed_case_reopens_within_its_window_else_a_linked_case_opens(session: Session,
                                                                          setup: WorkSetup) -> None:
    case = _new(session, setup)
    claim(session, case, "ask")
    engine.close_case(session, ref=case.ref, code="resolved", actor=ALICE, calendars=CALS, now=T0 + HOUR)
    assert _reply(session, setup, case, 40 * HOUR) is case  # 39 h after closing: inside 2 days (24x7)
    w = work(session, case)
    assert (w.status, w.reopened, case.status) == ("in_progress", 1, "open")
    assert states(session, case)["ask"] == "queued"  # cancelled by the close, runs again
    assert len(events(session, case, "case.reopened")) == 1

    claim(session, case, "ask", now=T0 + 41 * HOUR)
    engine.close_case(session, ref=case.ref, code="resolved", actor=ALICE, calendars=CALS, now=T0 + 41 * HOUR)
    linked = _reply(session, setup, case, 41 * HOUR + timedelta(days=2, seconds=1), "item-late")
    assert linked is not case and linked.ref != case.ref
    assert (work(session, case).status, work(session, linked).case_type) == ("closed", "complaint")
    assert states(session, linked) == {"ask": "queued"}
    assert [e.details for e in events(session, case, "case.linked")] == [{"to": linked.ref}]
    assert [e.details for e in events(session, linked, "case.linked")] == [{"from": case.ref}]
    assert (linked.team, linked.subject) == (case.team, case.subject)


def test_a_case_without_work_starts_it_when_correspondence_arrives(session: Session, setup: WorkSetup) -> None:
    legacy = new_case(session)  # case_type "complaint", opened before case work
    _reply(session, setup, legacy, HOUR)
    assert work(session, legacy).case_type == "complaint"
    assert set(states(session, legacy)) == {"ask", "review_reply"}


def test_imported_cases_get_the_first_stage_or_the_one_named(session: Session, setup: WorkSetup) -> None:
    first = new_case(session)
    inbound.start_imported(session, case=first, setup=setup, now=T0)
    assert (work(session, first).stage, states(session, first)) == ("handle", {"ask": "queued"})
    later = new_case(session)
    inbound.start_imported(session, case=later, setup=setup, stage="respond", now=T0)
    assert (work(session, later).stage, states(session, later)) == ("respond", {"letter": "queued"})
    assert inbound.start_imported(session, case=later, setup=setup, stage="respond", now=T0) is None
    closed = new_case(session)
    closed.status = "closed"
    inbound.start_imported(session, case=closed, setup=setup, now=T0)
    assert (work(session, closed).status, states(session, closed)) == ("closed", {})
    unknown = new_case(session)
    unknown.case_type = "legacy-thing"
    inbound.start_imported(session, case=unknown, setup=setup, now=T0)
    assert work(session, unknown).case_type == "general"


def test_setup_falls_back_to_the_default_type() -> None:
    setup = WorkSetup(case_types={"general": GENERAL}, doc_types={"complaint": "complaint"}, calendars=CALS)
    assert setup.type_for_doc("complaint") is GENERAL and setup.type_for_doc(None) is GENERAL
    assert setup.type_for_doc("x") is GENERAL


def test_a_case_closed_outside_casework_reopens_only_when_its_opening_is_within_the_window(
        session: Session, setup: WorkSetup) -> None:
    """Its close time is unknown (its work started closed, at import or at the reply): the opening
    is the earliest it can have closed.  An old one gets a linked case, a recent one reopens."""
    old = new_case(session)
    old.status, old.opened_at = "closed", T0 - timedelta(days=400)
    inbound.start_imported(session, case=old, setup=setup, now=T0)
    linked = _reply(session, setup, old, HOUR)  # an hour after the import, a year after it opened
    assert linked is not old and work(session, old).status == "closed"
    assert [e.details for e in events(session, old, "case.linked")] == [{"to": linked.ref}]

    legacy = new_case(session)  # closed before case work: its work starts with the reply
    legacy.status, legacy.opened_at = "closed", T0 - timedelta(days=30)
    assert _reply(session, setup, legacy, HOUR) is not legacy

    recent = new_case(session)
    recent.status, recent.opened_at = "closed", T0 - HOUR
    inbound.start_imported(session, case=recent, setup=setup, now=T0)
    assert _reply(session, setup, recent, HOUR) is recent  # opened 2 h ago: closed within the 2 days
    assert (work(session, recent).status, len(events(session, recent, "case.reopened"))) == ("in_progress", 1)


def test_a_reply_to_a_case_that_closed_by_itself_reopens_it_and_leaves_it_ready_to_close(session: Session) -> None:
    """close_when_done closed it; the customer writes within the window: the case reopens with the
    review task in front of its owner, and once that is done it waits for a person to close it (the
    rules run when the last stage completes, not again after a review)."""
    people(session)
    auto = case_type([{"name": "handle", "tasks": [task("ask"), task("review_reply", required=False, max_repeats=3)]}],
                     version=7, on_customer_reply={"review_task": "review_reply"}, reopen_window="2d",
                     close_when_done="resolved")
    register(session, auto)
    setup = WorkSetup(case_types={"complaint": auto}, doc_types={"complaint": "complaint"}, calendars=CALS)
    case = _new(session, setup)
    finish(session, case, "ask")
    assert (work(session, case).status, work(session, case).completion_code) == ("closed", "resolved")
    assert _reply(session, setup, case, 2 * HOUR) is case
    w = work(session, case)
    assert (w.status, w.stage, w.reopened) == ("in_progress", None, 1)
    assert open_task(session, case, "review_reply").assignee == ALICE.name
    finish(session, case, "review_reply", now=T0 + 3 * HOUR)
    w = work(session, case)
    assert (w.status, w.stage) == ("in_progress", None), "ready to close, not closed again by itself"
