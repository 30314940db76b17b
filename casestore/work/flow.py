"""One engine step over one case: its work row, every task row, its clocks and its definition.

``Run`` is what the engine's operations (``casestore.work.engine``, ``overrides``, ``inbound``)
share: it loads a case's state once, changes it through a few transitions, and writes exactly
one audit event per transition:

    work.started   stage.started   stage.completed   stage.skipped (override)   stage.reopened (override)
    task.enabled   task.completed  task.skipped      task.cancelled             checklist.ticked / unticked
    status.changed case.assigned   case.closed       case.reopened              customer.replied
    clock.started  clock.paused    clock.resumed     clock.stopped              clock.changed (override)
    case.urgency_raised

(``task.claimed``, ``task.released`` and the escalation events are written by the queue and clock-loop
services.)  Overrides carry ``details.override = true``, the reason, and ``before`` / ``after``.

Task rules.  A task of the current stage is *enabled* (a ``queued`` row is added to its queue)
when its last iteration in this pass of the stage is not open, completed or skipped, it has run
fewer than ``max_repeats`` times, every task in ``after`` is completed, and ``when`` holds; the
type's ``on_customer_reply.review_task`` is enabled only by a customer's reply.  A task is
*done* when its last iteration is completed.  The stage completes when every required
task (``required``, or ``required_if`` holding) is done and none of its tasks is open; then
``stage:<name>`` clock events fire and the next stage starts.  A condition that cannot be
evaluated counts as not holding (logged, and named by ``stuck``).

Tasks of the current stage with ``id <= case_work.stage_task_floor`` belong to an earlier pass
of the stage (it was reopened, or the case went back to it) and do not count, unless still open.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from casestore import audit
from casestore.audit import NewEvent
from casestore.errors import CaseStoreError, NotFound
from casestore.models import Case, Item, User
from casestore.search import outbox as search_outbox
from casestore.work import clocks
from casestore.work.actor import SYSTEM, Actor
from casestore.work.calendar import BusinessCalendar
from casestore.work.definitions import CaseType, Stage, Task
from casestore.work.expressions import ConditionFailed, compile_condition
from casestore.work.models import COARSE_STATUS, NO_DUE, OPEN_TASK_STATES, CaseWork, SlaClock, WorkTask
from casestore.work.registry import get_definition

log = logging.getLogger(__name__)

OVERRIDE = "override"
DONE_ITEM_STATES = ("done", "waived")
_MAX_STEPS = 1000  # stages x tasks of any sane definition; a guard against a definition that loops


class WorkMissing(NotFound):
    """The case has no work state (it was opened before case work existed and not imported since)."""


@dataclass
class Batch:
    """What a batch of runs (the file stage's) writes together at its end: new rows and audit
    events, so that a batch of hundreds of items costs a handful of INSERTs, not one per row."""

    pending: list[object] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    status_changed: set[str] = field(default_factory=set)  # cases whose open/pending/closed changed

    def write(self, session: Session) -> None:
        """Add the new rows, then write the audit events (their INSERT flushes the rows first)."""
        session.add_all(self.pending)
        self.pending.clear()
        audit.record_many(session, self.events)
        self.events.clear()


_S = TypeVar("_S", bound=Select[Any])


def _locked(stmt: _S, lock: bool) -> _S:
    return stmt.with_for_update() if lock else stmt


def load_work(session: Session, case: Case, *, lock: bool = False) -> CaseWork:
    """The case's work row; ``lock``: FOR UPDATE (PostgreSQL), so writers of one case take turns."""
    work = session.get(CaseWork, case.id, with_for_update=True if lock else None, populate_existing=lock)
    if work is None:
        raise WorkMissing(f"case {case.ref} has no case work yet: run `casework import cases` with it, or let "
                          "new correspondence start it")
    return work


class Run:
    """A case's work state, loaded once, and the transitions over it (see the module docstring)."""

    def __init__(self, session: Session, *, case: Case, work: CaseWork, case_type: CaseType, actor: Actor,
                 now: datetime, calendars: clocks.Calendars, tasks: list[WorkTask] | None = None,
                 facts: Mapping[str, str | None] | None = None, batch: Batch | None = None,
                 lock: bool = False) -> None:
        self.session = session
        self.case = case
        self.work = work
        self.ct = case_type
        self.actor = actor
        self.now = now
        self.calendars = calendars
        self.lock = lock
        self.tasks: list[WorkTask] = tasks if tasks is not None else list(session.scalars(
            _locked(select(WorkTask).where(WorkTask.case_id == case.id).order_by(WorkTask.id), lock),
            execution_options={"populate_existing": lock}))
        self._clocks: dict[str, SlaClock] | None = None
        self._facts = dict(facts) if facts is not None else None
        self.condition_errors: dict[str, str] = {}
        self.batch = batch  # a batch's: its owner writes the rows and events at its end
        self.events: list[NewEvent] = batch.events if batch is not None else []

    @classmethod
    def load(cls, session: Session, *, case: Case, actor: Actor, now: datetime, calendars: clocks.Calendars,
             lock: bool = True) -> Run:
        """Load the case's work to change it: its work row, then its tasks and clocks, are locked
        (PostgreSQL ``FOR UPDATE``, in that order, as the clock loop's escalations take them) and
        read fresh.  ``lock=False`` for reading only."""
        work = load_work(session, case, lock=lock)
        case_type = get_definition(session, work.case_type, work.type_version)
        return cls(session, case=case, work=work, case_type=case_type, actor=actor, now=now, calendars=calendars,
                   lock=lock)

    # -- audit ---------------------------------------------------------------------------------

    def event(self, action: str, *, reason: str = "", details: dict[str, Any] | None = None,
              item_id: str | None = None, override: bool = False) -> None:
        """Buffer one audit event; ``finish`` (or the batch's owner) writes them in one INSERT."""
        body = dict(details or {})
        if override:
            body[OVERRIDE] = True
        if self.case.id is None:
            self.session.flush()
        self.events.append({"actor": self.actor.name, "action": action, "reason": reason, "case_id": self.case.id,
                            "item_id": item_id, "details": body, "at": self.now})

    def add(self, row: object) -> None:
        """A new row: into the session now, or with the batch at its end."""
        if self.batch is not None:
            self.batch.pending.append(row)
        else:
            self.session.add(row)

    def ensure_ids(self) -> None:
        """Every task row has its id (new rows written)."""
        if any(r.id is None for r in self.tasks):
            if self.batch is not None:
                self.session.add_all(self.batch.pending)
                self.batch.pending.clear()
            self.session.flush()

    def write_events(self) -> None:
        """Write the buffered audit events now (in the order they happened)."""
        audit.record_many(self.session, self.events)
        self.events.clear()

    # -- definition look-ups -------------------------------------------------------------------

    def stage_def(self, name: str) -> Stage:
        for stage in self.ct.stages:
            if stage.name == name:
                return stage
        raise CaseStoreError(f"case {self.case.ref} is in stage {name!r}, which {self.ct.name} v{self.ct.version} "
                             "does not define; the stored definition is damaged")

    def next_stage(self, name: str) -> Stage | None:
        names = [s.name for s in self.ct.stages]
        i = names.index(name)
        return self.ct.stages[i + 1] if i + 1 < len(names) else None

    # -- tasks ---------------------------------------------------------------------------------

    def in_pass(self, row: WorkTask) -> bool:
        """Whether the row counts for this pass of its stage (see the module docstring)."""
        return (row.state in OPEN_TASK_STATES or row.stage != self.work.stage or row.id is None
                or row.id > self.work.stage_task_floor)

    def pass_rows(self, name: str) -> list[WorkTask]:
        return [r for r in self.tasks if r.name == name and self.in_pass(r)]

    def latest(self, name: str) -> WorkTask | None:
        rows = self.pass_rows(name)
        return max(rows, key=lambda r: r.iteration) if rows else None

    def done(self, name: str) -> bool:
        latest = self.latest(name)
        return latest is not None and latest.state == "completed"

    def runs(self, name: str) -> int:
        """Iterations of the task in this pass that ran (or run): every one but the cancelled."""
        return sum(1 for r in self.pass_rows(name) if r.state != "cancelled")

    def open_rows(self, stage: str | None = None) -> list[WorkTask]:
        return [r for r in self.tasks if r.state in OPEN_TASK_STATES and (stage is None or r.stage == stage)]

    def task_by_id(self, task_id: int) -> WorkTask:
        for row in self.tasks:
            if row.id == task_id:
                return row
        raise NotFound(f"no task {task_id} (or not visible to your teams)")

    # -- conditions ----------------------------------------------------------------------------

    def facts(self) -> dict[str, str | None]:
        """doc_type and channel of the item that opened the case (looked up once, when needed)."""
        if self._facts is None:
            row = self.session.execute(
                select(Item.doc_type, Item.channel).where(Item.case_id == self.case.id)
                .order_by(Item.received_at, Item.item_id).limit(1)).first()
            self._facts = {"doc_type": row[0] if row else None, "channel": row[1] if row else None}
        return self._facts

    def context(self) -> dict[str, Mapping[str, object] | None]:
        case, customer = self.case, self.case.customer
        facts = self.facts()
        codes: dict[str, object] = {}
        for row in sorted((r for r in self.tasks if r.state == "completed" and self.in_pass(r)),
                          key=lambda r: r.iteration):
            codes[row.name] = row.completion_code
        return {
            "case": {"ref": case.ref, "type": self.ct.name, "status": self.work.status, "urgency": self.work.urgency,
                     "subject": case.subject, "team": case.team, "doc_type": facts["doc_type"],
                     "channel": facts["channel"]},
            "customer": {"known": customer is not None, "name": customer.name if customer else None,
                         "email": customer.email if customer else None, "phone": customer.phone if customer else None,
                         "postcode": customer.postcode if customer else None},
            "tasks": codes,
        }

    def holds(self, text: str | None) -> bool:
        """A condition's value (None: no condition, holds); one that cannot be evaluated does not hold."""
        if text is None:
            return True
        try:
            return compile_condition(text).evaluate(self.context())
        except ConditionFailed as exc:
            log.warning("case %s: %s", self.case.ref, exc)
            self.condition_errors[text] = str(exc)
            return False

    def required(self, task: Task) -> bool:
        return task.required or (task.required_if is not None and self.holds(task.required_if))

    # -- enabling and stages -------------------------------------------------------------------

    def can_enable(self, task: Task) -> bool:
        latest = self.latest(task.name)
        if latest is not None and latest.state != "cancelled":
            return False
        if self.runs(task.name) >= task.max_repeats:
            return False
        return all(self.done(a) for a in task.after) and self.holds(task.when)

    def enable(self, task: Task, stage: str, *, assign_to: str | None = None, reason: str = "") -> WorkTask:
        """Add the task's next iteration to its queue (or straight to ``assign_to``, held until released)."""
        iteration = max((r.iteration for r in self.tasks if r.name == task.name), default=0) + 1
        row = WorkTask(case_id=self.case.id, stage=stage, name=task.name, iteration=iteration, state="queued",
                       queue=task.queue, urgency=self.work.urgency, due_at=self.task_due(), created_at=self.now,
                       lease_version=0, checklist={})
        if assign_to is not None:
            row.state, row.assignee, row.lease_expires_at, row.lease_version = "active", assign_to, None, 1
        self.add(row)
        self.tasks.append(row)
        self.event("task.enabled", reason=reason, details={"task": task.name, "iteration": iteration, "stage": stage,
                                                           "queue": task.queue, "assignee": assign_to})
        if task.sets_status is not None:
            self.set_status(task.sets_status, reason=f"task {task.name} enabled")
        return row

    def stage_done(self, stage: Stage) -> bool:
        if self.open_rows(stage.name):
            return False
        return all(self.done(t.name) for t in stage.tasks if self.required(t))

    def start_stage(self, stage: Stage, *, reason: str = "") -> None:
        """Make ``stage`` current; rows of it from before belong to an earlier pass."""
        self.ensure_ids()
        self.work.stage = stage.name
        self.work.stage_task_floor = max((r.id for r in self.tasks if r.stage == stage.name), default=0)
        self.event("stage.started", reason=reason, details={"stage": stage.name})

    def leave_stage(self, stage: Stage) -> None:
        """After the stage completed (or was skipped): its clock events, then the next stage."""
        self.clock_event(f"stage:{stage.name}")
        following = self.next_stage(stage.name)
        if following is None:
            self.work.stage = None
            self.work.stage_task_floor = 0
            self.all_done()
        else:
            self.start_stage(following)

    def all_done(self) -> None:
        """Every stage is done: the first ``close_when_done`` rule that holds closes the case, by
        ``system``; none holding leaves it open and *ready to close* (stage None, not closed) for a
        person to close with a code."""
        rule = next((r for r in self.ct.close_when_done if self.holds(r.when)), None)
        if rule is None:
            log.info("case %s: every stage done; ready to close", self.case.ref)
            return
        acting = self.actor
        self.actor = SYSTEM  # the close and its cancellations and clock stops are the system's doing
        try:
            self.close(rule.code, reason="every stage done (close_when_done)", auto=True)
        finally:
            self.actor = acting

    def close(self, code: str, *, reason: str = "", auto: bool = False) -> None:
        """Close the case with ``code`` (already checked against the type): open tasks are
        cancelled, ``case_closed`` clock events fire and every clock stops."""
        work = self.work
        for row in self.open_rows():
            row.state, row.lease_expires_at = "cancelled", None
            self.event("task.cancelled", reason="case closed",
                       details={"task_id": row.id, "task": row.name, "iteration": row.iteration,
                                "assignee": row.assignee})
        self.clock_event("case_closed")
        for sla in self.clocks.values():
            if sla.state != "stopped":
                self.stop_clock(sla, reason="case closed")
        before = work.status
        work.status, work.completion_code, work.closed_at = "closed", code, self.now
        self.set_coarse_status("closed")
        self.case.updated_at = self.now
        details: dict[str, Any] = {"code": code, "from": before, "stage": work.stage}
        if auto:
            details["auto"] = True
        self.event("case.closed", reason=reason, details=details)

    def advance(self) -> None:
        """Enable what may be enabled and complete stages, until nothing changes."""
        for _ in range(_MAX_STEPS):
            if self.work.status == "closed" or self.work.stage is None:
                return
            stage = self.stage_def(self.work.stage)
            enabled = False
            for task in stage.tasks:
                if task.name != self.ct.on_customer_reply.review_task and self.can_enable(task):
                    self.enable(task, stage.name)
                    enabled = True
            if enabled:
                continue  # a status it set may change what other conditions say
            if not self.stage_done(stage):
                return
            self.event("stage.completed", details={"stage": stage.name})
            self.leave_stage(stage)
        raise CaseStoreError(f"case {self.case.ref}: the definition {self.ct.name} v{self.ct.version} keeps "
                             "enabling tasks without end; check its stages")

    # -- status --------------------------------------------------------------------------------

    def set_status(self, status: str, *, reason: str = "", override: bool = False) -> bool:
        """Set the fine status (and the case's coarse one); clocks pause or resume as it enters or
        leaves their ``pause_in`` statuses.  False when the status was that already."""
        old = self.work.status
        if status == old:
            return False
        self.work.status = status
        self.set_coarse_status(COARSE_STATUS[status])
        self.case.updated_at = self.now
        self.event("status.changed", reason=reason, details={"from": old, "to": status}, override=override)
        pausing = [d for d in self.ct.clocks if (old in d.pause_in) != (status in d.pause_in)]
        for definition in pausing:
            row = self.clocks.get(definition.name)
            if row is None:
                continue
            was, now_in = old in definition.pause_in, status in definition.pause_in
            if not was and now_in and row.state == "running":
                self.pause_clock(row, reason=f"status {status}")
            elif was and not now_in and row.state == "paused":
                self.resume_clock(row, reason=f"status {status}")
        return True

    def set_coarse_status(self, status: str) -> None:
        """The case's own open / pending / closed (search facets and older readers use it).  Search
        follows through its outbox, in this transaction: a batch's owner (the file stage) enqueues
        the batch's changed cases at its end; anything else (a route, the CLI, the clock loop)
        here, and drains ``search_outbox.written_in(session)`` after its commit."""
        if self.case.status != status:
            self.case.status = status
            if self.batch is not None:
                self.batch.status_changed.add(self.case.ref)
            else:
                search_outbox.enqueue(self.session, case_refs=[self.case.ref])

    # -- clocks --------------------------------------------------------------------------------

    @property
    def clocks(self) -> dict[str, SlaClock]:
        if self._clocks is None:
            rows = self.session.scalars(
                _locked(select(SlaClock).where(SlaClock.case_id == self.case.id).order_by(SlaClock.id), self.lock),
                execution_options={"populate_existing": self.lock})
            self._clocks = {c.name: c for c in rows}
        return self._clocks

    def calendar(self, name: str | None = None) -> BusinessCalendar:
        return clocks.calendar_named(self.calendars, name or self.ct.calendar)

    def _clock_details(self, row: SlaClock, **extra: Any) -> dict[str, Any]:
        return {"clock": row.name, "state": row.state, "used_seconds": row.used_seconds,
                "budget_seconds": row.budget_seconds,
                "due_at": row.due_at.isoformat() if row.due_at else None, **extra}

    def clock_event(self, name: str) -> None:
        """An engine event (``case_started``, ``task:<name>``, ...): stop, then start, the clocks it names."""
        if not any(name in d.stop_on or d.start_on == name for d in self.ct.clocks):
            return  # no clock listens: nothing to load
        for definition in self.ct.clocks:
            row = self.clocks.get(definition.name)
            if name in definition.stop_on and row is not None and row.state != "stopped":
                self.stop_clock(row, reason=name)
        for definition in self.ct.clocks:
            if definition.start_on != name:
                continue
            row = self.clocks.get(definition.name)
            paused = self.work.status in definition.pause_in
            cal = self.calendar()
            if row is None:
                row = clocks.new_clock(case_id=self.case.id, definition=definition, calendar_name=self.ct.calendar,
                                       calendar=cal, now=self.now, paused=paused)
                self.add(row)
                self.clocks[definition.name] = row
            elif row.state == "stopped":
                clocks.restart(row, definition=definition, calendar=cal, now=self.now, paused=paused)
            else:
                continue  # running or paused: it started before and counts on
            self.event("clock.started", reason=name, details=self._clock_details(row))

    def reopen_clocks(self, closed_at: datetime | None) -> None:
        """The case reopened: each clock its close stopped (stopped at ``closed_at``; one stopped
        before, say by a task, stays stopped) resumes or restarts as its definition's ``on_reopen`` says."""
        if closed_at is None or all(d.on_reopen == "stay_stopped" for d in self.ct.clocks):
            return
        for definition in self.ct.clocks:
            row = self.clocks.get(definition.name)
            if (row is None or row.state != "stopped" or definition.on_reopen == "stay_stopped"
                    or row.stopped_at != closed_at):
                continue
            paused = self.work.status in definition.pause_in
            before = self._clock_state(row)
            if definition.on_reopen == "restart":
                clocks.restart(row, definition=definition, calendar=self.calendar(row.calendar), now=self.now,
                               paused=paused)
                action = "clock.started"
            else:
                clocks.reopen(row, calendar=self.calendar(row.calendar), now=self.now, paused=paused)
                action = "clock.resumed"
            self.event(action, reason="case_reopened",
                       details=self._clock_details(row, before=before, after=self._clock_state(row)))

    @staticmethod
    def _clock_state(row: SlaClock) -> dict[str, Any]:
        return {"state": row.state, "used_seconds": row.used_seconds,
                "due_at": row.due_at.isoformat() if row.due_at else None}

    def pause_clock(self, row: SlaClock, *, reason: str = "", override: bool = False) -> None:
        before = self._clock_state(row)
        clocks.pause(row, calendar=self.calendar(row.calendar), now=self.now)
        self.event("clock.paused", reason=reason, override=override,
                   details=self._clock_details(row, before=before, after=self._clock_state(row)))

    def resume_clock(self, row: SlaClock, *, reason: str = "", override: bool = False) -> None:
        before = self._clock_state(row)
        clocks.resume(row, calendar=self.calendar(row.calendar), now=self.now)
        self.event("clock.resumed", reason=reason, override=override,
                   details=self._clock_details(row, before=before, after=self._clock_state(row)))

    def stop_clock(self, row: SlaClock, *, reason: str = "") -> None:
        clocks.stop(row, calendar=self.calendar(row.calendar), now=self.now)
        met = row.breached_at is None
        self.event("clock.stopped", reason=reason, details=self._clock_details(row, met=met))

    def task_due(self) -> datetime:
        dues = [c.due_at for c in self.clocks.values() if c.state == "running" and c.due_at is not None]
        return min(dues) if dues else NO_DUE

    # -- ownership -----------------------------------------------------------------------------

    def user_can_take(self, name: str) -> bool:
        """Whether ``name`` is an enabled user (work can be put in front of them)."""
        user = self.session.scalar(select(User).where(User.name == name))
        return user is not None and not user.disabled

    # -- the end of every operation ------------------------------------------------------------

    def finish(self, *, flush: bool = True) -> None:
        """Open tasks carry the case's urgency and earliest running due time (queue order); the
        audit events are written (unless a batch owns them); flush (the file stage does not: its
        batch is flushed at once)."""
        due = self.task_due()
        for row in self.tasks:
            if row.state in OPEN_TASK_STATES:
                if row.urgency != self.work.urgency:
                    row.urgency = self.work.urgency
                if row.due_at != due:
                    row.due_at = due
        if self.batch is None:
            self.write_events()
        if flush:
            self.session.flush()
