"""Typed read models of a case's work, for the case folder (``GET /api/v1/cases/{ref}``,
``casework case show REF --json``) and the answers of the work routes.

``work_view`` builds a ``CaseWorkView``: type and version, stage, status, urgency, owner, why the
case is stuck, its stages, SLA clocks, tasks (with checklist and allowed codes) and the history of
its work (the audit events the engine, queues and clock loop wrote).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.models import AuditEvent, Case
from casestore.work.actor import SYSTEM
from casestore.work.definitions import CaseType, Task
from casestore.work.engine import blockers, missing_items
from casestore.work.flow import Run, get_definition
from casestore.work.models import NO_DUE, CaseWork, SlaClock, WorkTask
from casestore.work.registry import definition_of_case

WORK_EVENT_PREFIXES = ("work.", "stage.", "task.", "checklist.", "status.", "clock.", "sla.", "customer.")
WORK_EVENTS = frozenset({"case.assigned", "case.reassigned", "case.closed", "case.reopened", "case.urgency_raised",
                         "case.linked"})


class ChecklistItemView(BaseModel):
    name: str
    label: str
    required: bool
    state: Literal["open", "done", "waived"]
    by: str | None = None
    at: str | None = None
    reason: str | None = Field(default=None, description="why it was waived")


class CaseTaskView(BaseModel):
    """One iteration of a task of the case."""

    id: int
    stage: str
    name: str
    title: str
    iteration: int
    state: str = Field(description="queued, active, completed, skipped or cancelled")
    queue: str
    assignee: str | None
    lease_expires_at: datetime | None = Field(description="null while active: held until released")
    lease_version: int = Field(description="give this back when completing or ticking")
    urgency: int
    due_at: datetime | None = Field(description="the earliest running SLA clock's due time; null: none runs")
    created_at: datetime
    codes: list[str] = Field(description="the completion codes this task allows")
    checklist: list[ChecklistItemView]
    missing: list[str] = Field(description="required checklist items neither ticked nor waived")
    completion_code: str | None
    completed_at: datetime | None
    completed_by: str | None


class ClockView(BaseModel):
    name: str
    title: str
    state: str = Field(description="running, paused or stopped")
    calendar: str
    budget_seconds: int = Field(description="the clock's working time")
    used_seconds: int = Field(description="working time used up to the last pause or resume")
    started_at: datetime
    due_at: datetime | None = Field(description="null while paused")
    warn_at: datetime | None
    warned_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None


class StageView(BaseModel):
    name: str
    title: str
    state: Literal["done", "current", "ahead"]


class HistoryEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    reason: str
    item_id: str | None
    details: dict[str, Any]


class CaseWorkView(BaseModel):
    """The work of one case."""

    case_type: str
    version: int
    title: str
    stage: str | None = Field(description="the current stage; null when every stage is done")
    status: str
    urgency: int
    assignee: str | None = Field(description="who owns the case; replies are put in front of them")
    completion_code: str | None
    started_at: datetime
    closed_at: datetime | None
    reopened: int
    stuck: list[str] = Field(description="why nothing can move, naming what blocks it; empty when not stuck")
    completion_codes: list[str]
    stages: list[StageView]
    clocks: list[ClockView]
    tasks: list[CaseTaskView]
    history: list[HistoryEntry]


def checklist_view(task: WorkTask, definition: Task | None) -> list[ChecklistItemView]:
    ticks = task.checklist or {}
    items = definition.checklist if definition is not None else ()
    return [ChecklistItemView(name=i.name, label=i.label, required=i.required,
                              state=ticks.get(i.name, {}).get("state", "open"), by=ticks.get(i.name, {}).get("by"),
                              at=ticks.get(i.name, {}).get("at"), reason=ticks.get(i.name, {}).get("reason"))
            for i in items]


def _task_def(case_type: CaseType, name: str) -> Task | None:
    try:
        return case_type.task(name)
    except KeyError:
        return None


def task_view(task: WorkTask, case_type: CaseType) -> CaseTaskView:
    definition = _task_def(case_type, task.name)
    return CaseTaskView(
        id=task.id, stage=task.stage, name=task.name, title=definition.title if definition else "",
        iteration=task.iteration, state=task.state, queue=task.queue, assignee=task.assignee,
        lease_expires_at=task.lease_expires_at, lease_version=task.lease_version, urgency=task.urgency,
        due_at=None if task.due_at >= NO_DUE else task.due_at, created_at=task.created_at,
        codes=list(definition.codes) if definition else [], checklist=checklist_view(task, definition),
        missing=missing_items(task, definition) if definition else [], completion_code=task.completion_code,
        completed_at=task.completed_at, completed_by=task.completed_by)


def clock_view(clock: SlaClock, case_type: CaseType) -> ClockView:
    title = next((c.title for c in case_type.clocks if c.name == clock.name), "")
    return ClockView(name=clock.name, title=title, state=clock.state, calendar=clock.calendar,
                     budget_seconds=clock.budget_seconds, used_seconds=clock.used_seconds, started_at=clock.started_at,
                     due_at=clock.due_at, warn_at=clock.warn_at, warned_at=clock.warned_at,
                     breached_at=clock.breached_at, stopped_at=clock.stopped_at)


def _stages(case_type: CaseType, work: CaseWork) -> list[StageView]:
    names = [s.name for s in case_type.stages]
    current = names.index(work.stage) if work.stage in names else len(names)
    return [StageView(name=s.name, title=s.title,
                      state="done" if i < current else "current" if i == current else "ahead")
            for i, s in enumerate(case_type.stages)]


def is_work_event(action: str) -> bool:
    return action.startswith(WORK_EVENT_PREFIXES) or action in WORK_EVENTS


def work_view(session: Session, *, case: Case) -> CaseWorkView | None:
    """The case's work (None for a case that has none yet)."""
    work = session.get(CaseWork, case.id)
    if work is None:
        return None
    run = Run.load(session, case=case, actor=SYSTEM, now=work.started_at, calendars={}, lock=False)
    ct = run.ct
    events = session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id)
                             .order_by(AuditEvent.at, AuditEvent.id))
    return CaseWorkView(
        case_type=ct.name, version=ct.version, title=ct.title, stage=work.stage, status=work.status,
        urgency=work.urgency, assignee=work.assignee, completion_code=work.completion_code,
        started_at=work.started_at, closed_at=work.closed_at, reopened=work.reopened, stuck=blockers(run),
        completion_codes=list(ct.completion_codes), stages=_stages(ct, work),
        clocks=[clock_view(c, ct) for c in sorted(run.clocks.values(), key=lambda c: c.id)],
        tasks=[task_view(t, ct) for t in run.tasks],
        history=[HistoryEntry(at=e.at, actor=e.actor, action=e.action, reason=e.reason, item_id=e.item_id,
                              details=e.details) for e in events if is_work_event(e.action)],
    )


class TaskClocks(BaseModel):
    """What a list of tasks shows beside each task: its title and every SLA clock of its case."""

    title: str
    clocks: list[ClockView]


def tasks_with_clocks(session: Session, *, tasks: Collection[tuple[int, str]]) -> dict[tuple[int, str], TaskClocks]:
    """For ``(case_id, task name)`` pairs: the task's title and its case's SLA clocks (in start
    order), read in two queries whatever the number; definitions come from the registry's cache.
    For lists of tasks (my work, a queue, the supervisor's view)."""
    if not tasks:
        return {}
    ids = list({case_id for case_id, _ in tasks})
    types = {row[0]: (row[1], row[2]) for row in session.execute(
        select(CaseWork.case_id, CaseWork.case_type, CaseWork.type_version).where(CaseWork.case_id.in_(ids)))}
    definitions = {key: get_definition(session, *key) for key in set(types.values())}
    clocks: dict[int, list[ClockView]] = {case_id: [] for case_id in ids}
    for clock in session.scalars(select(SlaClock).where(SlaClock.case_id.in_(ids)).order_by(SlaClock.id)):
        key = types.get(clock.case_id)
        if key is not None:
            clocks[clock.case_id].append(clock_view(clock, definitions[key]))
    out = {}
    for case_id, task in tasks:
        key = types.get(case_id)
        definition = _task_def(definitions[key], task) if key is not None else None
        out[(case_id, task)] = TaskClocks(title=definition.title if definition is not None else "",
                                          clocks=clocks.get(case_id, []))
    return out


def task_view_of(session: Session, *, task: WorkTask) -> CaseTaskView:
    """The view of one task (reads its case's definition: one query, the definition itself cached)."""
    return task_view(task, definition_of_case(session, task.case_id))
