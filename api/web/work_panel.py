"""What the case page shows of a case's work, read through the same read model as
``GET /api/v1/cases/{ref}`` (``casestore.work.views.work_view``): the header's type, stage,
status, urgency, owner and SLA clocks, the stage bar, the task the viewer works here, the other
open tasks, and what the supervisor actions may offer.

Which supervisor actions are shown is the case type's own matrix (``permissions.allowed`` for
the viewer's role), the rule the services enforce: an agent sees none, and the services answer
403 to an agent who posts one anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from api.auth import Principal
from api.queue_routes import actor_of
from api.web.sla import ShownClock, show_clock
from casestore import access, users
from casestore.models import Case
from casestore.work.permissions import allowed
from casestore.work.registry import get_definition
from casestore.work.views import CaseTaskView, CaseWorkView, work_view

OVERRIDE_ACTIONS = ("reassign", "redirect", "waive_item", "skip_stage", "reopen_stage", "pause_clock", "reopen_case")
OPEN = ("queued", "active")


@dataclass(frozen=True)
class Waivable:
    task_id: int
    task: str
    item: str
    label: str


@dataclass
class WorkPanel:
    work: CaseWorkView
    clocks: list[ShownClock]
    mine: CaseTaskView | None  # the task the viewer holds here (the one asked for, else the first)
    others: list[CaseTaskView]  # the other open tasks of the case
    may: dict[str, bool] = field(default_factory=dict)  # override action -> the viewer's role may do it
    people: list[str] = field(default_factory=list)  # who a task may be given to (sees the case)
    queues: list[str] = field(default_factory=list)  # the case type's queues
    waivable: list[Waivable] = field(default_factory=list)
    done_stages: list[str] = field(default_factory=list)  # stages one may go back to (done or current)

    @property
    def supervisor(self) -> bool:
        return any(self.may.values())

    @property
    def stage_title(self) -> str:
        done = "every stage done" if self.work.status == "closed" else "every stage done: ready to close with a code"
        return next((s.title or s.name for s in self.work.stages if s.state == "current"), done)


def _people(session: Session, case: Case) -> list[str]:
    return [u.name for u in users.list_users(session)
            if not u.disabled and u.role != "integration" and access.can_see_case(access.principal_of(u), case)]


def work_panel(session: Session, *, case: Case, user: Principal, now: datetime,
               task_id: int | None = None) -> WorkPanel | None:
    """The case's work as the viewer sees it; None for a case that has no work yet."""
    view = work_view(session, case=case)
    if view is None:
        return None
    open_tasks = [t for t in view.tasks if t.state in OPEN]
    held = [t for t in open_tasks if t.state == "active" and t.assignee == user.name]
    mine = next((t for t in held if t.id == task_id), held[0] if held else None)
    panel = WorkPanel(work=view, clocks=[show_clock(c, now) for c in view.clocks], mine=mine,
                      others=[t for t in open_tasks if mine is None or t.id != mine.id])
    case_type = get_definition(session, view.case_type, view.version)
    actor = actor_of(user)
    panel.may = {action: allowed(actor, case_type, action) for action in OVERRIDE_ACTIONS}
    if panel.supervisor:
        panel.people = _people(session, case)
        panel.queues = [q.name for q in case_type.queues]
        panel.waivable = [Waivable(task_id=t.id, task=t.name, item=i.name, label=i.label)
                          for t in open_tasks for i in t.checklist if i.state == "open"]
        panel.done_stages = [s.name for s in view.stages if s.state != "ahead"]
    return panel
