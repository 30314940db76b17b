"""Case work over HTTP: complete a task, tick its checklist, notes, a case's status, close and
reopen, and the supervisor overrides (reassign, redirect, waive, skip or reopen a stage, pause,
resume or change a clock, raise urgency).

Thin: each route opens one transaction around one service of ``casestore.work`` and returns a
typed view.  Errors are the services' own, turned into responses by the app's one handler: 404
unknown or not visible, 403 the role may not (the case type's matrix), 409 a stale claim or a
closed case, 422 a code the task does not allow, unticked required items, a missing reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import Principal, get_runtime, require_roles
from api.params import LeaseVersion, TaskId
from api.params import Urgency as UrgencyValue
from api.queue_routes import actor_of
from api.search_follow import index_now
from casestore.cases import get_case
from casestore.db import translate_errors
from casestore.search import outbox as search_outbox
from casestore.work import engine, overrides
from casestore.work.clocks import Calendars
from casestore.work.models import SlaClock, WorkTask
from casestore.work.views import CaseTaskView, CaseWorkView, ClockView, task_view_of, work_view

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["case work"])
Worker = Annotated[Principal, require_roles("agent", "supervisor", "admin")]
Reason = Field(min_length=1, max_length=2000, description="why: required for overrides, kept in the audit trail")


class Complete(BaseModel):
    code: str = Field(min_length=1, max_length=100, description="a completion code the task allows")
    note: str | None = Field(default=None, max_length=100_000, description="added to the case's notes")
    lease_version: LeaseVersion | None = None


class Tick(BaseModel):
    done: bool = True
    lease_version: LeaseVersion | None = None


class NewNote(BaseModel):
    body: str = Field(min_length=1, max_length=100_000)


class NoteAdded(BaseModel):
    note_id: int
    author: str
    created_at: datetime


class SetStatus(BaseModel):
    status: str = Field(description="open, in_progress, awaiting_customer, awaiting_third_party or pending")
    reason: str = Field(default="", max_length=2000)


class Close(BaseModel):
    code: str = Field(min_length=1, max_length=100, description="a completion code of the case's type")
    reason: str = Field(default="", max_length=2000)


class Override(BaseModel):
    reason: str = Reason


class Reassign(Override):
    to: str = Field(min_length=1, max_length=100, description="the user who gets it")


class AssignCase(Override):
    to: str | None = Field(default=None, max_length=100, description="the case's new owner; null: nobody")


class Redirect(Override):
    queue: str = Field(min_length=1, max_length=63)


class Waive(Override):
    item: str = Field(min_length=1, max_length=63)


class ClockChange(Override):
    duration: str | None = Field(default=None, description='new total working time, e.g. "3d"')
    due_at: datetime | None = Field(default=None, description="or a new due time")


class Urgency(Override):
    urgency: UrgencyValue


def _case_work(session: Session, ref: str) -> CaseWorkView:
    view = work_view(session, case=get_case(session, ref=ref))
    assert view is not None  # the service just changed it
    return view


def _work_after(request: Request, ref: str, change: Callable[[Session, Calendars], object]) -> CaseWorkView:
    """One transaction: ``change``, then the case's work view; then search follows a status change
    (the work engine wrote its outbox row in the transaction)."""
    rt = get_runtime(request)
    calendars = rt.calendars  # loaded once per process
    with translate_errors(), rt.sessions() as session, session.begin():
        change(session, calendars)
        view = _case_work(session, ref)
        outbox_ids = search_outbox.written_in(session)
    index_now(rt, outbox_ids, what=f"case {ref}")
    return view


def _task_after(request: Request, task_id: TaskId, change: Callable[[Session, Calendars], WorkTask]) -> CaseTaskView:
    """One transaction: ``change`` a task, then its view; then search follows (completing the last
    task can close the case; a task's message is a new folder entry)."""
    rt = get_runtime(request)
    calendars = rt.calendars
    with translate_errors(), rt.sessions() as session, session.begin():
        view = task_view_of(session, task=change(session, calendars))
        outbox_ids = search_outbox.written_in(session)
    index_now(rt, outbox_ids, what=f"task {task_id}")
    return view


def _clock_after(request: Request, ref: str, change: Callable[[Session, Calendars], SlaClock]) -> ClockView:
    rt = get_runtime(request)
    calendars = rt.calendars
    with translate_errors(), rt.sessions() as session, session.begin():
        name = change(session, calendars).name
        return next(c for c in _case_work(session, ref).clocks if c.name == name)


@router.post("/tasks/{task_id}/complete", response_model=CaseTaskView)
def complete(request: Request, task_id: TaskId, body: Complete, user: Worker) -> CaseTaskView:
    """Complete your task with a code; every required checklist item must be ticked or waived."""
    outbox = get_runtime(request).task_outbox
    return _task_after(request, task_id, lambda s, cals: engine.complete_task(
        s, task_id=task_id, code=body.code, actor=actor_of(user), calendars=cals, lease_version=body.lease_version,
        note=body.note, outbox=outbox))


@router.post("/tasks/{task_id}/checklist/{item}", response_model=CaseTaskView)
def tick(request: Request, task_id: TaskId, item: str, body: Tick, user: Worker) -> CaseTaskView:
    """Tick (``done: false``: untick) a checklist item of your task."""
    return _task_after(request, task_id, lambda s, cals: engine.tick(
        s, task_id=task_id, item=item, actor=actor_of(user), calendars=cals, done=body.done,
        lease_version=body.lease_version))


@router.post("/cases/{ref}/notes", response_model=NoteAdded, status_code=201)
def add_note(request: Request, ref: str, body: NewNote, user: Worker) -> NoteAdded:
    rt = get_runtime(request)
    with translate_errors(), rt.sessions() as session, session.begin():
        note = engine.add_note(session, ref=ref, body=body.body, actor=actor_of(user))
        return NoteAdded(note_id=note.id, author=note.author, created_at=note.created_at)


@router.post("/cases/{ref}/status", response_model=CaseWorkView)
def set_status(request: Request, ref: str, body: SetStatus, user: Worker) -> CaseWorkView:
    return _work_after(request, ref, lambda s, cals: engine.set_status(
        s, ref=ref, status=body.status, actor=actor_of(user), calendars=cals, reason=body.reason))


@router.post("/cases/{ref}/close", response_model=CaseWorkView)
def close(request: Request, ref: str, body: Close, user: Worker) -> CaseWorkView:
    """Close the case with a completion code of its type; open tasks are cancelled, clocks stop."""
    return _work_after(request, ref, lambda s, cals: engine.close_case(
        s, ref=ref, code=body.code, actor=actor_of(user), calendars=cals, reason=body.reason))


@router.post("/cases/{ref}/reopen", response_model=CaseWorkView)
def reopen(request: Request, ref: str, body: Override, user: Worker) -> CaseWorkView:
    """Reopen a closed case (an override: a reason is required)."""
    return _work_after(request, ref, lambda s, cals: overrides.reopen_case(
        s, ref=ref, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/assign", response_model=CaseWorkView)
def assign_case(request: Request, ref: str, body: AssignCase, user: Worker) -> CaseWorkView:
    """Give the case an owner (replies are put in front of them)."""
    return _work_after(request, ref, lambda s, cals: overrides.reassign_case(
        s, ref=ref, to=body.to, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/urgency", response_model=CaseWorkView)
def raise_urgency(request: Request, ref: str, body: Urgency, user: Worker) -> CaseWorkView:
    return _work_after(request, ref, lambda s, cals: overrides.raise_urgency(
        s, ref=ref, urgency=body.urgency, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/tasks/{task_id}/reassign", response_model=CaseTaskView)
def reassign(request: Request, task_id: TaskId, body: Reassign, user: Worker) -> CaseTaskView:
    """Give a task to a user: held by them until released."""
    return _task_after(request, task_id, lambda s, cals: overrides.reassign_task(
        s, task_id=task_id, to=body.to, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/tasks/{task_id}/redirect", response_model=CaseTaskView)
def redirect(request: Request, task_id: TaskId, body: Redirect, user: Worker) -> CaseTaskView:
    """Move a task to another queue of its case type."""
    return _task_after(request, task_id, lambda s, cals: overrides.redirect_task(
        s, task_id=task_id, queue=body.queue, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/tasks/{task_id}/waive", response_model=CaseTaskView)
def waive(request: Request, task_id: TaskId, body: Waive, user: Worker) -> CaseTaskView:
    """Waive a checklist item: it no longer holds the task's completion back."""
    return _task_after(request, task_id, lambda s, cals: overrides.waive_item(
        s, task_id=task_id, item=body.item, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/stages/{stage}/skip", response_model=CaseWorkView)
def skip_stage(request: Request, ref: str, stage: str, body: Override, user: Worker) -> CaseWorkView:
    """Skip the current stage: its open tasks are skipped, the next stage starts."""
    return _work_after(request, ref, lambda s, cals: overrides.skip_stage(
        s, ref=ref, stage=stage, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/stages/{stage}/reopen", response_model=CaseWorkView)
def reopen_stage(request: Request, ref: str, stage: str, body: Override, user: Worker) -> CaseWorkView:
    """Go back to the current or an earlier stage and run its tasks again."""
    return _work_after(request, ref, lambda s, cals: overrides.reopen_stage(
        s, ref=ref, stage=stage, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/clocks/{name}/pause", response_model=ClockView)
def pause_clock(request: Request, ref: str, name: str, body: Override, user: Worker) -> ClockView:
    return _clock_after(request, ref, lambda s, cals: overrides.pause_clock(
        s, ref=ref, clock=name, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/clocks/{name}/resume", response_model=ClockView)
def resume_clock(request: Request, ref: str, name: str, body: Override, user: Worker) -> ClockView:
    return _clock_after(request, ref, lambda s, cals: overrides.resume_clock(
        s, ref=ref, clock=name, actor=actor_of(user), reason=body.reason, calendars=cals))


@router.post("/cases/{ref}/clocks/{name}/change", response_model=ClockView)
def change_clock(request: Request, ref: str, name: str, body: ClockChange, user: Worker) -> ClockView:
    """A new total duration (working time) or a new due time for one clock of the case."""
    return _clock_after(request, ref, lambda s, cals: overrides.change_clock(
        s, ref=ref, clock=name, actor=actor_of(user), reason=body.reason, calendars=cals, duration=body.duration,
        due_at=body.due_at))
