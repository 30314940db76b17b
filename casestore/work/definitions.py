"""The typed shape of a case-type definition (one YAML file per type).

This module is the contract between the definitions loader (``casestore.work.loader``: YAML
with line numbers, cross-reference validation, expression compilation) and the engine.  It
checks only what one field can check alone; everything that needs the whole file (unknown
queue or task, entry cycles, unreachable required tasks, bad expressions, unknown roles) is
the loader's job, which reports file and line.

Durations are strings of working time on the type's calendar ("4h", "30m", "5d"), parsed by
``casestore.work.calendar.parse_duration`` when a clock starts.  Conditions (``when``,
``required_if``) are CEL expressions over ``case`` (ref, type, status, urgency, subject, team,
doc_type, channel), ``customer`` and ``tasks`` (name -> completion code of its last completed
iteration); they are compiled by the loader, never ``eval``-ed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from casestore.work.models import WORK_STATUSES  # ``closed`` is reached only by closing the case

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
TEMPLATE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"  # an outbound template's name (casestore.outbound.templates)

# What a role may be allowed to do.  The engine checks every call against the case type's matrix.
ACTIONS = (
    "work_task",       # claim, get-next, release, tick checklist items, complete own tasks
    "add_note",
    "set_status",      # set the case status to one the type allows
    "close_case",      # close with a case completion code
    "reassign",        # give a task or case to another user
    "redirect",        # move a task to another queue
    "skip_stage",
    "reopen_stage",
    "waive_item",      # waive a required checklist item (reason required)
    "pause_clock",     # pause, resume or change an SLA clock (reason required)
    "change_clock",
    "reopen_case",
    "raise_urgency",
    "manage_definitions",
    "manage_calendars",
)
Action = Literal[
    "work_task", "add_note", "set_status", "close_case", "reassign", "redirect", "skip_stage", "reopen_stage",
    "waive_item", "pause_clock", "change_clock", "reopen_case", "raise_urgency", "manage_definitions",
    "manage_calendars",
]
# The actions that are overrides: they need a reason, and write an audit event saying so.
OVERRIDES: frozenset[str] = frozenset(
    {"reassign", "redirect", "skip_stage", "reopen_stage", "waive_item", "pause_clock", "change_clock",
     "reopen_case", "raise_urgency"}
)
ClockEvent = Literal["start", "stop"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Queue(_Strict):
    """A work queue, owned by a team: its agents get its tasks through get-next."""

    name: str = Field(pattern=NAME_PATTERN)
    team: str = Field(min_length=1, max_length=100)
    title: str = ""
    lease: str = "30m"            # how long a claim lasts before the task returns to the queue (wall time)


class ChecklistItem(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    label: str = Field(min_length=1)
    required: bool = True


class Send(_Strict):
    """An outbound message a completion sends: the template (by name, for the case's type, see
    ``casestore.outbound.templates``) on one channel, with fixed template ``fields``."""

    template: str = Field(pattern=TEMPLATE_PATTERN)
    channel: Literal["email", "sms", "letter"]
    fields: dict[str, str] = {}


class OnComplete(_Strict):
    """What completing the task with ``code`` does besides moving the flow on: ``send`` queues the
    message in the outbox in the same transaction as the completion (nothing sent twice: the
    outbox row's idempotency key is the task's id and code; nothing lost: no commit, no message)."""

    code: str = Field(min_length=1)
    send: Send


class Task(_Strict):
    """A task in a stage.  It is enabled when its stage is active, every task in ``after`` is
    completed and ``when`` (if any) holds; it is then queued in ``queue``."""

    name: str = Field(pattern=NAME_PATTERN)
    title: str = ""
    queue: str = Field(pattern=NAME_PATTERN)
    required: bool = True
    required_if: str | None = None       # CEL: required when this holds (then ``required`` must be false)
    after: tuple[str, ...] = ()           # task names (same stage) that must be completed first
    when: str | None = None               # CEL entry criterion
    max_repeats: int = Field(default=1, ge=1, le=100)  # how many times the task may run in one case
    codes: tuple[str, ...] = Field(min_length=1)        # completion codes this task allows
    sets_status: str | None = None        # case status set when the task is enabled (e.g. in_progress)
    status_on_complete: dict[str, str] = {}  # completion code -> case status (e.g. info_requested -> awaiting_customer)
    repeat_on: tuple[str, ...] = ()        # completion codes that enable the task again (up to max_repeats)
    checklist: tuple[ChecklistItem, ...] = ()
    on_complete: tuple[OnComplete, ...] = ()  # one mapping or a list of them; codes must be the task's
    requires_outbound: bool = False       # cannot complete until a message to the customer went out for it

    @field_validator("on_complete", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    def sends_on(self, code: str) -> Send | None:
        """The message completing with ``code`` sends, if any."""
        return next((o.send for o in self.on_complete if o.code == code), None)

    @field_validator("sets_status")
    @classmethod
    def _status(cls, value: str | None) -> str | None:
        if value is not None and value not in WORK_STATUSES[:-1]:
            raise ValueError(f"status {value!r} is not one of {', '.join(WORK_STATUSES[:-1])}")
        return value


class Stage(_Strict):
    """Stages run in order; a stage completes when all its required tasks are completed."""

    name: str = Field(pattern=NAME_PATTERN)
    title: str = ""
    tasks: tuple[Task, ...] = Field(min_length=1)


class Clock(_Strict):
    """An SLA clock: ``duration`` of working time on the type's calendar from when it starts.

    ``start_on`` / ``stop_on`` name engine events: ``case_started``, ``case_closed``,
    ``customer_replied``, ``task:<name>`` (that task completed) or ``stage:<name>`` (that stage
    completed).  The clock pauses while the case status is one of ``pause_in``.

    ``on_reopen``: what a clock the case's close stopped (not one stopped before) does when the case reopens: ``resume``
    (count on from the working time it had used; a warning or breach already fired stays fired),
    ``restart`` (a fresh ``duration`` from the reopening) or ``stay_stopped``.
    """

    name: str = Field(pattern=NAME_PATTERN)
    title: str = ""
    duration: str
    warn_at_percent: int = Field(default=75, ge=1, le=99)
    start_on: str = "case_started"
    stop_on: tuple[str, ...] = ("case_closed",)
    pause_in: tuple[str, ...] = ("awaiting_customer",)
    on_reopen: Literal["resume", "restart", "stay_stopped"] = "resume"


class EscalationAction(_Strict):
    """One thing to do on an SLA event; several may be set in one action."""

    raise_urgency: int = Field(default=0, ge=0, le=100)
    move_to_queue: str | None = None      # every open task of the case goes to this queue
    unassign: bool = False                # open tasks of the case go back to their queue
    notify_role: str | None = None        # an audit/notification event addressed to this role


class Escalation(_Strict):
    clock: str = Field(pattern=NAME_PATTERN)
    on: Literal["warn", "breach"]
    actions: tuple[EscalationAction, ...] = Field(min_length=1)


class CustomerReply(_Strict):
    """What an inbound item attached to an open case does (beyond resuming paused clocks)."""

    review_task: str | None = None        # a task name (any stage) enabled to review the new correspondence
    raise_urgency: int = Field(default=0, ge=0, le=100)
    status: str | None = "in_progress"    # the case status after a reply, if it was awaiting the customer


class CloseRule(_Strict):
    """One way a case closes by itself when its last stage completes: with ``code`` (a case
    completion code of the type) if ``when`` (CEL, as a task's) holds, or always without ``when``."""

    code: str = Field(min_length=1)
    when: str | None = None


class CaseType(_Strict):
    """One case type, as loaded from ``<name>.yaml``; ``version`` is bumped when the file changes."""

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    title: str = ""
    calendar: str = "default"
    roles: dict[str, tuple[Action, ...]]  # role name (agent, supervisor, admin) -> allowed actions
    queues: tuple[Queue, ...] = Field(min_length=1)
    clocks: tuple[Clock, ...] = ()
    escalations: tuple[Escalation, ...] = ()
    stages: tuple[Stage, ...] = Field(min_length=1)
    completion_codes: tuple[str, ...] = Field(min_length=1)
    reopen_window: str = "20d"            # a closed case reopens on new correspondence within this working time
    on_customer_reply: CustomerReply = CustomerReply()
    # What happens when every stage is done: the first rule that holds closes the case by ``system``
    # with its code; none holding (or none given) leaves the case *ready to close* for a person
    # (the ``ready_to_close`` case list, the supervisor dashboard).  ``close_when_done: CODE`` is
    # one rule without a condition.
    close_when_done: tuple[CloseRule, ...] = ()

    @field_validator("close_when_done", mode="before")
    @classmethod
    def _close_rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [{"code": value}]
        return [value] if isinstance(value, dict) else value

    def task(self, name: str) -> Task:
        for stage in self.stages:
            for task in stage.tasks:
                if task.name == name:
                    return task
        raise KeyError(name)

    def stage_of(self, task_name: str) -> Stage:
        for stage in self.stages:
            if any(t.name == task_name for t in stage.tasks):
                return stage
        raise KeyError(task_name)

    def queue(self, name: str) -> Queue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)

    def allows(self, role: str, action: str) -> bool:
        return action in self.roles.get(role, ())
