"""Supervisor overrides: reassign, redirect, skip or reopen a stage, waive a checklist item, pause,
resume or change a clock, reopen a closed case, raise urgency.

Each needs the action in the actor's role (the case type's matrix; else ``Forbidden``) and a
non-empty reason (else ``InvalidInput``), and writes one audit event with who, what, when, the
reason, ``override: true`` and the state ``before`` and ``after``.  What follows from an
override (tasks enabled by a skipped stage, a status changed by a reopen) writes its own events.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from casestore.errors import Conflict, InvalidInput
from casestore.models import Case, utcnow
from casestore.users import get_user
from casestore.work import clocks
from casestore.work.actor import Actor
from casestore.work.engine import task_definition, task_run
from casestore.work.flow import Run
from casestore.work.models import OPEN_TASK_STATES, CaseWork, SlaClock, WorkTask
from casestore.work.permissions import can_see, require, visible_case

log = logging.getLogger(__name__)

MAX_URGENCY = 1_000_000


def _reason(reason: str | None) -> str:
    clean = (reason or "").strip()
    if not clean:
        raise InvalidInput("an override needs a reason: say why (it is kept in the audit trail)")
    return clean


def _case_run(session: Session, *, ref: str, actor: Actor, calendars: clocks.Calendars,
              now: datetime | None) -> tuple[Case, Run]:
    case = visible_case(session, ref=ref, actor=actor)
    return case, Run.load(session, case=case, actor=actor, now=now or utcnow(), calendars=calendars)


def _task_state(task: WorkTask) -> dict[str, object]:
    return {"state": task.state, "queue": task.queue, "assignee": task.assignee}


def _open(task: WorkTask) -> None:
    if task.state not in OPEN_TASK_STATES:
        raise Conflict(f"task {task.id} is {task.state}; only a queued or active task can be changed")


def _assignable(session: Session, run: Run, to: str) -> str:
    """The user ``to`` exists, is enabled and may see the case; else InvalidInput."""
    user = get_user(session, name=to)
    if user.disabled:
        raise InvalidInput(f"user {user.name!r} is disabled; choose another")
    person = Actor(name=user.name, role=user.role, teams=tuple(user.teams or ()))
    if user.role == "integration" or not can_see(person, run.case):
        raise InvalidInput(f"user {user.name!r} may not see case {run.case.ref} (its team is {run.case.team}); "
                           "choose someone in that team")
    return user.name


def reassign_task(session: Session, *, task_id: int, to: str, actor: Actor, reason: str,
                  calendars: clocks.Calendars, now: datetime | None = None) -> WorkTask:
    """Give an open task to user ``to``: active, held by them until released (no lease expiry)."""
    clean = _reason(reason)
    run, task = task_run(session, task_id=task_id, actor=actor, calendars=calendars, now=now or utcnow())
    require(actor, run.ct, "reassign")
    _open(task)
    name = _assignable(session, run, to)
    before = _task_state(task)
    task.state, task.assignee, task.lease_expires_at = "active", name, None
    task.lease_version += 1
    run.event("task.reassigned", reason=clean, override=True,
              details={"task_id": task.id, "task": task.name, "before": before, "after": _task_state(task)})
    run.finish()
    return task


def reassign_case(session: Session, *, ref: str, to: str | None, actor: Actor, reason: str,
                  calendars: clocks.Calendars, now: datetime | None = None) -> CaseWork:
    """Make ``to`` the case's owner (None: nobody); replies are put in front of the owner."""
    clean = _reason(reason)
    _, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "reassign")
    name = _assignable(session, run, to) if to else None
    before = run.work.assignee
    if before == name:
        return run.work
    run.work.assignee = name
    run.event("case.reassigned", reason=clean, override=True, details={"before": before, "after": name})
    run.finish()
    return run.work


def redirect_task(session: Session, *, task_id: int, queue: str, actor: Actor, reason: str,
                  calendars: clocks.Calendars, now: datetime | None = None) -> WorkTask:
    """Move an open task to another queue of its case type; it waits there, unclaimed."""
    clean = _reason(reason)
    run, task = task_run(session, task_id=task_id, actor=actor, calendars=calendars, now=now or utcnow())
    require(actor, run.ct, "redirect")
    _open(task)
    queues = [q.name for q in run.ct.queues]
    if queue not in queues:
        raise InvalidInput(f"queue {queue!r} is not a queue of {run.ct.name}; use one of: {', '.join(queues)}")
    before = _task_state(task)
    task.queue, task.state, task.assignee, task.lease_expires_at = queue, "queued", None, None
    run.event("task.redirected", reason=clean, override=True,
              details={"task_id": task.id, "task": task.name, "before": before, "after": _task_state(task)})
    run.finish()
    return task


def waive_item(session: Session, *, task_id: int, item: str, actor: Actor, reason: str,
               calendars: clocks.Calendars, now: datetime | None = None) -> WorkTask:
    """Waive a checklist item of an open task: it no longer holds the task's completion back."""
    clean = _reason(reason)
    now = now or utcnow()
    run, task = task_run(session, task_id=task_id, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "waive_item")
    _open(task)
    definition = task_definition(run, task)
    names = [i.name for i in definition.checklist]
    if item not in names:
        raise InvalidInput(f"task {task.name} has no checklist item {item!r}; its items: {', '.join(names) or 'none'}")
    checklist = dict(task.checklist or {})
    before = checklist.get(item)
    if before is not None and before.get("state") in ("done", "waived"):
        raise Conflict(f"item {item} of task {task.id} is {before['state']} already")
    checklist[item] = {"state": "waived", "by": actor.name, "at": now.isoformat(), "reason": clean}
    task.checklist = checklist
    run.event("checklist.waived", reason=clean, override=True,
              details={"task_id": task.id, "task": task.name, "item": item, "before": before,
                       "after": checklist[item]})
    run.finish()
    return task


def skip_stage(session: Session, *, ref: str, stage: str, actor: Actor, reason: str,
               calendars: clocks.Calendars, now: datetime | None = None) -> CaseWork:
    """Skip the case's current stage: its open tasks are skipped and the next stage starts."""
    clean = _reason(reason)
    case, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "skip_stage")
    if run.work.status == "closed":
        raise Conflict(f"case {case.ref} is closed; reopen it first")
    if run.work.stage != stage:
        current = run.work.stage or "none: every stage is done"
        raise InvalidInput(f"stage {stage!r} is not the current stage of {case.ref} ({current}); only the current "
                           "stage can be skipped")
    definition = run.stage_def(stage)
    skipped = []
    for row in run.open_rows(stage):
        row.state, row.lease_expires_at = "skipped", None
        skipped.append(row.id)
        run.event("task.skipped", reason=clean,
                  details={"task_id": row.id, "task": row.name, "iteration": row.iteration, "assignee": row.assignee})
    following = run.next_stage(stage)
    run.event("stage.skipped", reason=clean, override=True,
              details={"stage": stage, "skipped_tasks": skipped,
                       "before": {"stage": stage}, "after": {"stage": following.name if following else None}})
    run.leave_stage(definition)
    run.advance()
    run.finish()
    return run.work


def reopen_stage(session: Session, *, ref: str, stage: str, actor: Actor, reason: str,
                 calendars: clocks.Calendars, now: datetime | None = None) -> CaseWork:
    """Go back to ``stage`` (the current one or an earlier one) and run its tasks again: open tasks
    of the stage being left are cancelled; what was done in that stage before no longer counts."""
    clean = _reason(reason)
    case, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "reopen_stage")
    if run.work.status == "closed":
        raise Conflict(f"case {case.ref} is closed; reopen the case first")
    names = [s.name for s in run.ct.stages]
    if stage not in names:
        raise InvalidInput(f"stage {stage!r} is not a stage of {run.ct.name}; use one of: {', '.join(names)}")
    current = run.work.stage
    if current is not None and names.index(stage) > names.index(current):
        raise InvalidInput(f"stage {stage} comes after the current stage {current}; only the current or an "
                           "earlier stage can be reopened (skip stages to move forward)")
    for row in run.open_rows():
        if row.stage == current:
            row.state, row.lease_expires_at = "cancelled", None
            run.event("task.cancelled", reason=clean,
                      details={"task_id": row.id, "task": row.name, "iteration": row.iteration,
                               "assignee": row.assignee})
    run.event("stage.reopened", reason=clean, override=True,
              details={"stage": stage, "before": {"stage": current}, "after": {"stage": stage}})
    run.start_stage(run.stage_def(stage), reason=clean)
    run.advance()
    run.finish()
    return run.work


def _clock(run: Run, name: str) -> SlaClock:
    row = run.clocks.get(name)
    if row is None:
        names = ", ".join(sorted(run.clocks)) or "none has started"
        raise InvalidInput(f"case {run.case.ref} has no clock {name!r} running or stopped (its clocks: {names})")
    return row


def pause_clock(session: Session, *, ref: str, clock: str, actor: Actor, reason: str,
                calendars: clocks.Calendars, now: datetime | None = None) -> SlaClock:
    """Pause a running clock by hand (it resumes by hand, or when the status leaves a pause status)."""
    clean = _reason(reason)
    _, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "pause_clock")
    row = _clock(run, clock)
    run.pause_clock(row, reason=clean, override=True)
    run.finish()
    return row


def resume_clock(session: Session, *, ref: str, clock: str, actor: Actor, reason: str,
                 calendars: clocks.Calendars, now: datetime | None = None) -> SlaClock:
    clean = _reason(reason)
    _, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "pause_clock")
    row = _clock(run, clock)
    run.resume_clock(row, reason=clean, override=True)
    run.finish()
    return row


def change_clock(session: Session, *, ref: str, clock: str, actor: Actor, reason: str,
                 calendars: clocks.Calendars, duration: str | None = None, due_at: datetime | None = None,
                 now: datetime | None = None) -> SlaClock:
    """Give a clock a new total duration (working time, e.g. "3d") or a new due time."""
    clean = _reason(reason)
    _, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "change_clock")
    row = _clock(run, clock)
    before = {"budget_seconds": row.budget_seconds, "due_at": row.due_at.isoformat() if row.due_at else None}
    clocks.change(row, calendar=run.calendar(row.calendar), now=run.now, duration=duration, due_at=due_at)
    after = {"budget_seconds": row.budget_seconds, "due_at": row.due_at.isoformat() if row.due_at else None}
    run.event("clock.changed", reason=clean, override=True, details={"clock": row.name, "before": before,
                                                                     "after": after})
    run.finish()
    return row


def reopen_case(session: Session, *, ref: str, actor: Actor, reason: str, calendars: clocks.Calendars,
                now: datetime | None = None) -> CaseWork:
    """Reopen a closed case (a supervisor's override)."""
    clean = _reason(reason)
    _, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "reopen_case")
    reopen(run, reason=clean, override=True)
    run.advance()
    run.finish()
    return run.work


def reopen(run: Run, *, reason: str, override: bool) -> None:
    """The reopen transition (shared with new correspondence for a recently closed case): the case
    is in progress again, at the stage it was closed in; tasks cancelled by the close run again;
    clocks the close stopped resume or restart as their definitions say (``on_reopen``)."""
    work = run.work
    if work.status != "closed":
        raise Conflict(f"case {run.case.ref} is not closed (it is {work.status}); nothing to reopen")
    before = {"status": work.status, "completion_code": work.completion_code,
              "closed_at": work.closed_at.isoformat() if work.closed_at else None}
    closed_at = work.closed_at
    work.status, work.completion_code, work.closed_at = "in_progress", None, None
    work.reopened += 1
    run.set_coarse_status("open")
    run.case.updated_at = run.now
    run.event("case.reopened", reason=reason, override=override,
              details={"before": before, "after": {"status": work.status}, "times": work.reopened})
    run.reopen_clocks(closed_at)


def raise_urgency(session: Session, *, ref: str, urgency: int, actor: Actor, reason: str,
                  calendars: clocks.Calendars, now: datetime | None = None) -> CaseWork:
    """Set the case's urgency higher (its tasks move up their queues)."""
    clean = _reason(reason)
    _, run = _case_run(session, ref=ref, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "raise_urgency")
    before = run.work.urgency
    if not before < urgency <= MAX_URGENCY:
        raise InvalidInput(f"urgency {urgency} must be above the case's current {before} (and at most {MAX_URGENCY})")
    run.work.urgency = urgency
    run.event("case.urgency_raised", reason=clean, override=True, details={"before": before, "after": urgency})
    run.advance()  # a condition may read the urgency
    run.finish()
    return run.work
