"""The case-work engine: start a case's work, complete tasks, tick checklists, set the status,
close a case, and say why a case is stuck.

Services are keyword-only, may flush and never commit: the route, CLI command or file stage owns
the transaction.  ``now`` defaults to the current time (tests pass their own).  Each transition
writes one audit event (see ``casestore.work.flow``).  Rules in short:

* ``start_case`` enables the first stage's tasks (``after`` empty, ``when`` holding) and starts the
  clocks that start on ``case_started``.
* ``complete_task`` needs the actor's live claim (state ``active``, its assignee, lease not expired,
  the ``lease_version`` it holds if given: else ``Conflict``), a code the task allows and every
  required checklist item ticked or waived (else ``InvalidInput``, naming them).  Then the code's
  status, a repeat if the code asks for one, clocks on ``task:<name>``, and the flow moves on.
  A task with ``requires_outbound`` needs a message for it queued or gone (``InvalidInput``
  otherwise) unless the code itself sends one; a code with ``on_complete.send`` queues its
  message through the ``outbox`` port in the same transaction (``casestore.work.outbox_port``).
* ``close_case`` needs a case completion code; open tasks are cancelled and clocks stopped.
* ``stuck`` names what blocks a case in which nothing is open but something required is not done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casestore import notes
from casestore.errors import Conflict, Forbidden, InvalidInput, NotFound
from casestore.models import Case, Note, utcnow
from casestore.work import clocks
from casestore.work.actor import SYSTEM, Actor
from casestore.work.definitions import CaseType, Task
from casestore.work.flow import DONE_ITEM_STATES, Batch, Run, get_definition, load_work
from casestore.work.models import NO_DUE, OPEN_TASK_STATES, WORK_STATUSES, CaseWork, SlaClock, WorkTask
from casestore.work.outbox_port import OutboxMissing, TaskOutbox
from casestore.work.permissions import check_visible, require, visible_case

log = logging.getLogger(__name__)

SETTABLE_STATUSES = WORK_STATUSES[:-1]  # ``closed`` only through close_case
NOTE_ROLES = frozenset({"agent", "supervisor", "admin", "system"})


def _now(now: datetime | None) -> datetime:
    return now or utcnow()


def start_case(session: Session, *, case: Case, case_type: CaseType, actor: Actor, calendars: clocks.Calendars,
               version: int | None = None, now: datetime | None = None, stage: str | None = None,
               status: str = "open", facts: Mapping[str, str | None] | None = None,
               opened_now: bool = False, batch: Batch | None = None) -> CaseWork:
    """Give ``case`` its work of type ``case_type`` (see ``begin_case``)."""
    return begin_case(session, case=case, case_type=case_type, actor=actor, calendars=calendars, version=version,
                      now=now, stage=stage, status=status, facts=facts, opened_now=opened_now, batch=batch).work


def begin_case(session: Session, *, case: Case, case_type: CaseType, actor: Actor, calendars: clocks.Calendars,
               version: int | None = None, now: datetime | None = None, stage: str | None = None,
               status: str = "open", facts: Mapping[str, str | None] | None = None,
               opened_now: bool = False, batch: Batch | None = None) -> Run:
    """Give ``case`` its work of type ``case_type`` (that version must be registered): the first
    stage (or ``stage``) starts and its entry tasks are enabled; clocks on ``case_started`` start.

    ``status`` is the starting status (an imported case keeps its own); a ``closed`` case gets its
    work row and no tasks or clocks.  ``facts`` (doc_type, channel of the opening item) spare a
    look-up when the caller knows them.  Conflict if the case has work already (not looked up
    when ``opened_now``: the case was opened in this transaction).  ``batch`` (the file stage's)
    takes the new rows and audit events, written with the rest of the batch.
    """
    now = _now(now)
    if version is not None and version != case_type.version:
        raise InvalidInput(f"version {version} is not the version of the definition given ({case_type.version})")
    if case.id is None:
        session.flush()
    if not opened_now and session.get(CaseWork, case.id) is not None:
        raise Conflict(f"case {case.ref} has case work already; it keeps the type it started with")
    if status not in WORK_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(WORK_STATUSES)}")
    names = [s.name for s in case_type.stages]
    if stage is not None and stage not in names:
        raise InvalidInput(f"stage {stage!r} is not a stage of {case_type.name}; use one of: {', '.join(names)}")
    first = case_type.stages[names.index(stage)] if stage is not None else case_type.stages[0]
    work = CaseWork(case_id=case.id, case_type=case_type.name, type_version=case_type.version, stage=None,
                    status=status, urgency=0, started_at=now, reopened=0, stage_task_floor=0,
                    closed_at=now if status == "closed" else None)
    run = Run(session, case=case, work=work, case_type=case_type, actor=actor, now=now, calendars=calendars,
              tasks=[], facts=facts, batch=batch)
    run.add(work)
    run._clocks = {}  # a case starting its work has none: no look-up
    run.event("work.started", details={"case_type": case_type.name, "version": case_type.version,
                                       "stage": first.name, "status": status})
    if status == "closed":
        work.stage = first.name
    else:
        run.clock_event("case_started")
        run.start_stage(first)
        run.advance()
    run.finish(flush=batch is None)
    log.debug("case %s started as %s v%d in stage %s", case.ref, case_type.name, case_type.version, work.stage)
    return run


# -- tasks -----------------------------------------------------------------------------------------


def task_run(session: Session, *, task_id: int, actor: Actor, calendars: clocks.Calendars,
              now: datetime) -> tuple[Run, WorkTask]:
    """The run of the task's case (locked and read fresh, see ``Run.load``), after checking the
    actor may see that case (else NotFound)."""
    case_id = session.scalar(select(WorkTask.case_id).where(WorkTask.id == task_id))
    case = session.get(Case, case_id) if case_id is not None else None
    if case is None:
        raise NotFound(f"no task {task_id} (or not visible to your teams)")
    check_visible(actor, case, what=f"task {task_id}")
    run = Run.load(session, case=case, actor=actor, now=now, calendars=calendars)
    return run, run.task_by_id(task_id)


def check_claim(task: WorkTask, *, actor: Actor, lease_version: int | None, now: datetime) -> None:
    """Conflict (409) unless ``actor`` holds a live claim on the task (``system`` needs none)."""
    if task.state not in OPEN_TASK_STATES:
        raise Conflict(f"task {task.id} is {task.state} already; nothing more can be done to it")
    if actor.role == SYSTEM.role:
        return
    if task.state == "queued" and lease_version is None:
        raise Conflict(f"task {task.id} is waiting in queue {task.queue}, not claimed by you: claim it first "
                       "(get-next, or claim the task), then work it")
    expired = task.lease_expires_at is not None and task.lease_expires_at <= now
    if (task.state != "active" or task.assignee != actor.name or expired
            or (lease_version is not None and lease_version != task.lease_version)):
        raise Conflict(f"your claim on task {task.id} expired or was taken over; get it again")


def task_definition(run: Run, task: WorkTask) -> Task:
    try:
        return run.ct.task(task.name)
    except KeyError:
        raise InvalidInput(f"task {task.id} ({task.name}) is not in {run.ct.name} v{run.ct.version}; "
                           "a supervisor can redirect or skip it") from None


def missing_items(task: WorkTask, definition: Task) -> list[str]:
    """Required checklist items neither ticked nor waived."""
    return [i.name for i in definition.checklist
            if i.required and (task.checklist or {}).get(i.name, {}).get("state") not in DONE_ITEM_STATES]


def complete_task(session: Session, *, task_id: int, code: str, actor: Actor, calendars: clocks.Calendars,
                  lease_version: int | None = None, note: str | None = None, now: datetime | None = None,
                  outbox: TaskOutbox | None = None) -> WorkTask:
    """Complete the actor's task with ``code`` (see the module docstring); the flow moves on.
    ``outbox``: needed when the task sends or requires a message (else ``OutboxMissing``)."""
    now = _now(now)
    run, task = task_run(session, task_id=task_id, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "work_task")
    check_claim(task, actor=actor, lease_version=lease_version, now=now)
    definition = task_definition(run, task)
    clean = (code or "").strip()
    if clean not in definition.codes:
        raise InvalidInput(f"code {code!r} is not allowed for task {task.name}; use one of: "
                           f"{', '.join(definition.codes)}")
    missing = missing_items(task, definition)
    if missing:
        labels = {i.name: i.label for i in definition.checklist}
        listed = "; ".join(f"{name} ({labels[name]})" for name in missing)
        raise InvalidInput(f"task {task.id} ({task.name}) needs its required checklist items first: {listed}; "
                           "tick them, or ask a supervisor to waive them with a reason")
    sends = definition.sends_on(clean)
    if (sends is not None or definition.requires_outbound) and outbox is None:
        raise OutboxMissing(f"task {task.name} of {run.ct.name} sends or needs a message to the customer, and "
                            "this caller has no outbox wired in; report this fault (nothing was completed)")
    if definition.requires_outbound and sends is None and outbox is not None \
            and outbox.sent_for_task(session, task_id=task.id) == 0:
        senders = [o.code for o in definition.on_complete]
        raise InvalidInput(f"task {task.id} ({task.name}) needs a message to the customer first: reply from the "
                           "case (Reply, for this task)" + (f", or complete it with {' or '.join(senders)}, which "
                                                            "sends one" if senders else "") + "; then complete it")
    repeats = clean in definition.repeat_on
    task.state, task.completion_code, task.completed_at, task.completed_by = "completed", clean, now, actor.name
    task.lease_expires_at = None
    run.event("task.completed", details={"task_id": task.id, "task": task.name, "iteration": task.iteration,
                                         "code": clean})
    if note and note.strip():
        run.write_events()  # the note's own event comes after the completion's
        notes.add_note(session, ref=run.case.ref, author=actor.name, body=note)
    if sends is not None and outbox is not None:
        run.write_events()  # the message's own audit event comes after the completion's
        outbound_id = outbox.send_for_task(
            session, case=run.case, task_id=task.id, template=sends.template, channel=sends.channel,
            actor=actor.name, fields=sends.fields, idempotency_key=f"task:{task.id}:{clean}")
        log.info("case %s: task %s completed with %s queued %s %s (%s)", run.case.ref, task.name, clean,
                 sends.channel, sends.template, outbound_id)
    if run.work.assignee is None and actor.role != SYSTEM.role:
        run.work.assignee = actor.name
        run.event("case.assigned", reason=f"completed task {task.name}",
                  details={"from": None, "to": actor.name})
    status = definition.status_on_complete.get(clean)
    if status is not None:
        run.set_status(status, reason=f"task {task.name} completed with {clean}")
    run.clock_event(f"task:{task.name}")
    if repeats:
        if run.runs(definition.name) < definition.max_repeats and run.holds(definition.when):
            run.enable(definition, task.stage, reason=f"repeat on {clean}")
        else:
            log.info("case %s: task %s not repeated (ran %d of %d times)", run.case.ref, task.name,
                     run.runs(definition.name), definition.max_repeats)
    run.advance()
    run.finish()
    return task


def tick(session: Session, *, task_id: int, item: str, actor: Actor, calendars: clocks.Calendars,
         done: bool = True, lease_version: int | None = None, now: datetime | None = None) -> WorkTask:
    """Tick (or, ``done=False``, untick) a checklist item of the actor's task."""
    now = _now(now)
    run, task = task_run(session, task_id=task_id, actor=actor, calendars=calendars, now=now)
    require(actor, run.ct, "work_task")
    check_claim(task, actor=actor, lease_version=lease_version, now=now)
    definition = task_definition(run, task)
    names = [i.name for i in definition.checklist]
    if item not in names:
        raise InvalidInput(f"task {task.name} has no checklist item {item!r}; its items: "
                           f"{', '.join(names) or 'none'}")
    checklist = dict(task.checklist or {})
    state = checklist.get(item, {}).get("state")
    if (done and state == "done") or (not done and state is None):
        return task  # already so: no transition, no event
    if done:
        checklist[item] = {"state": "done", "by": actor.name, "at": now.isoformat()}
    else:
        checklist.pop(item, None)
    task.checklist = checklist
    run.event("checklist.ticked" if done else "checklist.unticked",
              details={"task_id": task.id, "task": task.name, "item": item, "before": state})
    run.finish()
    return task


# -- the case --------------------------------------------------------------------------------------


def set_status(session: Session, *, ref: str, status: str, actor: Actor, calendars: clocks.Calendars,
               reason: str = "", now: datetime | None = None) -> CaseWork:
    """Set the case's status to one its type allows (not ``closed``: close the case with a code)."""
    now = _now(now)
    case = visible_case(session, ref=ref, actor=actor)
    run = Run.load(session, case=case, actor=actor, now=now, calendars=calendars)
    require(actor, run.ct, "set_status")
    clean = (status or "").strip().lower()
    if clean == "closed":
        raise InvalidInput("a case is closed with a completion code: use close, not status")
    if clean not in SETTABLE_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(SETTABLE_STATUSES)}")
    if run.work.status == "closed":
        raise Conflict(f"case {case.ref} is closed; a supervisor can reopen it first")
    run.set_status(clean, reason=reason)
    run.advance()
    run.finish()
    return run.work


def close_case(session: Session, *, ref: str, code: str, actor: Actor, calendars: clocks.Calendars,
               reason: str = "", now: datetime | None = None) -> CaseWork:
    """Close the case with a completion code of its type: open tasks are cancelled, clocks stop."""
    now = _now(now)
    case = visible_case(session, ref=ref, actor=actor)
    run = Run.load(session, case=case, actor=actor, now=now, calendars=calendars)
    require(actor, run.ct, "close_case")
    work = run.work
    if work.status == "closed":
        raise Conflict(f"case {case.ref} is closed already (code {work.completion_code})")
    clean = (code or "").strip()
    if clean not in run.ct.completion_codes:
        raise InvalidInput(f"code {code!r} is not a completion code of {run.ct.name} cases; use one of: "
                           f"{', '.join(run.ct.completion_codes)}")
    run.close(clean, reason=reason)
    run.finish()
    return work


def add_note(session: Session, *, ref: str, body: str, actor: Actor) -> Note:
    """Add a note to a case the actor may see, if its type lets the actor's role add notes (a case
    without work: agents, supervisors and admins may)."""
    case = visible_case(session, ref=ref, actor=actor)
    work = session.get(CaseWork, case.id)
    if work is not None:
        require(actor, get_definition(session, work.case_type, work.type_version), "add_note")
    elif actor.disabled or actor.role not in NOTE_ROLES:
        raise Forbidden(f"role {actor.role} may not add notes to cases")
    return notes.add_note(session, ref=case.ref, author=actor.name, body=body)


def refresh_task_order(session: Session, *, case_id: int) -> None:
    """Open tasks of the case carry its urgency and the earliest due time of its running clocks
    (``NO_DUE`` if none): the columns get-next orders by.  Call after changing either."""
    urgency = session.scalar(select(CaseWork.urgency).where(CaseWork.case_id == case_id))
    if urgency is None:
        return
    due = session.scalar(select(func.min(SlaClock.due_at))
                         .where(SlaClock.case_id == case_id, SlaClock.state == "running"))
    session.execute(update(WorkTask)
                    .where(WorkTask.case_id == case_id, WorkTask.state.in_(OPEN_TASK_STATES))
                    .values(urgency=urgency, due_at=due or NO_DUE))


# -- stuck -----------------------------------------------------------------------------------------


def stuck(session: Session, case: Case) -> list[str]:
    """Why the case cannot move: empty unless no task is open and the current stage still has a
    required task not done; then one line per blocked required task, naming what blocks it."""
    try:
        work = load_work(session, case)
    except NotFound:
        return []
    if work.status == "closed" or work.stage is None:
        return []
    run = Run.load(session, case=case, actor=SYSTEM, now=utcnow(), calendars={}, lock=False)
    return blockers(run)


def blockers(run: Run) -> list[str]:
    """``stuck`` over a loaded run."""
    if run.work.status == "closed" or run.work.stage is None or run.open_rows():
        return []
    stage = run.stage_def(run.work.stage)
    reasons: list[str] = []
    for task in stage.tasks:
        if run.required(task) and not run.done(task.name):
            reasons.extend(_blocked(run, task))
    return reasons


def _condition_says(run: Run, text: str) -> str:
    error = run.condition_errors.get(text)
    return f"its condition `{text}` could not be evaluated ({error})" if error else f"its condition `{text}` " \
        "does not hold"


def _blocked(run: Run, task: Task) -> list[str]:
    latest = run.latest(task.name)
    if latest is not None and latest.state in ("skipped", "cancelled"):
        return [f"task {task.name} is required but was {latest.state}"]
    waiting = [f"task {task.name} waits for {a}, which {_why_not_done(run, a)}" for a in task.after
               if not run.done(a)]
    if waiting:
        return waiting
    if not run.holds(task.when):
        return [f"task {task.name} is required but {_condition_says(run, task.when or '')}"]
    if run.runs(task.name) >= task.max_repeats:
        return [f"task {task.name} is required but ran {task.max_repeats} times, its limit, without completing"]
    return [f"task {task.name} is required and has not run"]


def _why_not_done(run: Run, name: str) -> str:
    latest = run.latest(name)
    if latest is not None and latest.state in ("skipped", "cancelled"):
        return f"was {latest.state}"
    task = run.ct.task(name)
    pending = [a for a in task.after if not run.done(a)]
    if pending:
        return f"waits for {', '.join(pending)}"
    if not run.holds(task.when):
        return f"was skipped: {_condition_says(run, task.when or '')}"
    if run.runs(name) >= task.max_repeats:
        return f"ran {task.max_repeats} times, its limit, without completing"
    return "has not run"
