"""Typed read models of the work queues: a task as an agent sees it, a queue's counts, a page of a
queue.  The API returns these as its ``response_model``; the CLI prints them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class TaskView(BaseModel):
    """One task: where it waits, how urgent, who holds it and until when."""

    kind: Literal["task"] = "task"
    id: int
    case_id: int
    case_ref: str
    case_type: str
    stage: str
    name: str
    iteration: int
    state: str = Field(description="queued, active, completed, skipped or cancelled")
    queue: str
    urgency: int
    due_at: datetime | None = Field(description="the earliest running SLA clock's due time; null: no clock runs")
    created_at: datetime
    assignee: str | None
    lease_expires_at: datetime | None = Field(description="when an active task returns to its queue unless "
                                              "renewed; null while active: held until released")
    lease_version: int = Field(description="give this back to renew the lease; bumped by every claim")


class NextWork(BaseModel):
    """What get-next handed out: a task, or nothing (``task`` null) when the actor's queues are empty."""

    task: TaskView | None


class QueueSummary(BaseModel):
    """A queue's counts: ``open`` tasks (waiting + active), of which ``active`` are claimed; tasks of
    cases with an SLA clock ``at_risk`` (past its warning, not breached) or ``breached``."""

    queue: str
    team: str
    title: str
    open: int
    active: int
    waiting: int
    at_risk: int
    breached: int
    oldest_waiting: datetime | None = Field(description="when the longest-waiting queued task was created")


class TaskPage(BaseModel):
    """Queued tasks in get-next order; pass ``next_after`` as ``after`` for the next page."""

    queue: str
    tasks: list[TaskView]
    next_after: str | None
