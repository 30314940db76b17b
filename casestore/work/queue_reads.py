"""Reading the work queues: task views, a queue's counts, a queue's waiting tasks page by page.

Counts read no task rows: waiting and active tasks come from the counts the database keeps
(``casestore.work.queue_counts``); at-risk and breached from the clocks past their warning alone
(indexed), joined to their cases' open tasks; the oldest waiting task from one indexed ``LIMIT 1``
per queue.  At a million tasks the old aggregate over the tasks took 1.2-2.8 s.  A clock is
*breached* once its due time has passed (or the clock loop marked it), *at risk* once its warning
moment has passed and it is not breached; stopped clocks count for neither.  Agents see counts of
the queues their teams work, over the cases they may see; supervisors and admins every queue.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, case, func, or_, select, text, union_all
from sqlalchemy.orm import Session

from casestore.errors import Forbidden, InvalidInput, NotFound
from casestore.models import Case
from casestore.work import queue_counts
from casestore.work.actor import Actor
from casestore.work.models import NO_DUE, SlaClock, WorkTask
from casestore.work.pick import Claimed, ClaimedRow, TaskRow
from casestore.work.queue_index import QueueInfo, queue_index
from casestore.work.queue_views import QueueSummary, TaskPage, TaskView
from casestore.work.queues import ACTIVE, QUEUED
from casestore.work.visibility import sees_all_cases, visible_case_clause

OPEN = text("tasks.state IN ('queued', 'active')")
MAX_PAGE = 500


def task_views(session: Session, tasks: Sequence[WorkTask]) -> list[TaskView]:
    """Views of these tasks, their cases' references read in one query."""
    case_ids = {t.case_id for t in tasks}
    refs = {row[0]: (row[1], row[2]) for row in session.execute(
        select(Case.id, Case.ref, Case.case_type).where(Case.id.in_(case_ids)))} if case_ids else {}
    return [_view(t, *refs.get(t.case_id, ("", ""))) for t in tasks]


def claimed_view(claimed: Claimed | ClaimedRow) -> TaskView:
    """The view of a task get-next claimed (its case's reference came with the claim)."""
    return _view(claimed.task, claimed.case_ref, claimed.case_type)


def _view(t: WorkTask | TaskRow, case_ref: str, case_type: str) -> TaskView:
    return TaskView(
        id=t.id, case_id=t.case_id, case_ref=case_ref,
        case_type=case_type, stage=t.stage, name=t.name, iteration=t.iteration,
        state=t.state, queue=t.queue, urgency=t.urgency, due_at=None if t.due_at >= NO_DUE else t.due_at,
        created_at=t.created_at, assignee=t.assignee, lease_expires_at=t.lease_expires_at,
        lease_version=t.lease_version,
    )


def task_view(session: Session, *, task_id: int, actor: Actor) -> TaskView:
    """One task, if ``actor`` may see its case; NotFound otherwise."""
    stmt = select(WorkTask).where(WorkTask.id == task_id)
    clause = visible_case_clause(actor)
    if clause is not None:
        stmt = stmt.join(Case, Case.id == WorkTask.case_id).where(clause)
    task = session.scalar(stmt)
    if task is None:
        raise NotFound(f"no task {task_id} (or its case is not visible to you); check the id")
    return task_views(session, [task])[0]


def held_tasks(session: Session, *, actor: Actor, limit: int = 2000) -> list[TaskView]:
    """Every task someone holds (``active``) on a case ``actor`` may see, by assignee then lease
    expiry (read through the partial index on active tasks); at most ``limit``.  For the
    supervisor's view of who works on what."""
    stmt = select(WorkTask).where(ACTIVE)
    clause = visible_case_clause(actor)
    if clause is not None:
        stmt = stmt.join(Case, Case.id == WorkTask.case_id).where(clause)
    rows = session.scalars(stmt.order_by(WorkTask.assignee, WorkTask.lease_expires_at, WorkTask.id).limit(limit))
    return task_views(session, list(rows))


def _queues_for(session: Session, actor: Actor) -> list[QueueInfo]:
    index = queue_index(session)
    if sees_all_cases(actor):
        return [index.queues[name] for name in sorted(index.queues)]
    teams = set(actor.teams)
    return [q for name, q in sorted(index.queues.items()) if q.team in teams] if not actor.disabled else []


def queue_summaries(session: Session, *, actor: Actor, now: datetime,
                    only: Collection[str] | None = None) -> list[QueueSummary]:
    """The counts of each queue ``actor`` may look at (see the module docstring); ``only``: of
    these queues alone (the others ``actor`` may look at are left out, unknown names ignored)."""
    queues = _queues_for(session, actor)
    if only is not None:
        queues = [q for q in queues if q.name in set(only)]
    if not queues:
        return []
    names = [q.name for q in queues]
    clause = visible_case_clause(actor)
    teams = None if clause is None else ([] if actor.disabled else list(actor.teams))
    by_queue = queue_counts.counts(session, queues=names, teams=teams)
    risk = _risks(session, names, clause, now)
    oldest = _oldest_waiting(session, names, clause)
    out = []
    for q in queues:
        got = by_queue.get(q.name)
        waiting, active = (got.queued, got.active) if got is not None else (0, 0)
        n_breached, n_at_risk = risk.get(q.name, (0, 0))
        out.append(QueueSummary(
            queue=q.name, team=q.team, title=q.title, open=waiting + active, active=active, waiting=waiting,
            at_risk=n_at_risk, breached=n_breached, oldest_waiting=_utc(oldest.get(q.name)),
        ))
    return out


def _risks(session: Session, names: list[str], clause: ColumnElement[bool] | None,
           now: datetime) -> dict[str, tuple[int, int]]:
    """(breached, at risk) open tasks per queue, reading only the clocks past their warning: running
    ones by ``warn_at`` (``ix_sla_clocks_warn_at``) and fired ones by ``ix_sla_clocks_fired``."""
    breached = or_(SlaClock.breached_at.is_not(None), and_(SlaClock.state == "running", SlaClock.due_at <= now))
    cols = (SlaClock.case_id.label("case_id"), case((breached, 1), else_=0).label("breached"))
    past_warning = select(*cols).where(text("sla_clocks.state = 'running'"), SlaClock.warn_at <= now)
    fired = select(*cols).where(text("(sla_clocks.warned_at IS NOT NULL OR sla_clocks.breached_at IS NOT NULL) "
                                     "AND sla_clocks.state <> 'stopped'"))
    either = union_all(past_warning, fired).subquery()
    per_case = (select(either.c.case_id, func.max(either.c.breached).label("breached"))
                .group_by(either.c.case_id).subquery())
    risks = (select(WorkTask.queue, func.sum(per_case.c.breached),
                    func.sum(case((per_case.c.breached == 0, 1), else_=0)))
             .join(per_case, per_case.c.case_id == WorkTask.case_id)
             .where(OPEN, WorkTask.queue.in_(names)).group_by(WorkTask.queue))
    if clause is not None:
        risks = risks.join(Case, Case.id == WorkTask.case_id).where(clause)
    return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in session.execute(risks)}


def _oldest_waiting(session: Session, names: list[str], clause: ColumnElement[bool] | None) -> dict[str, datetime]:
    """When each queue's longest-waiting task was created: one indexed ``LIMIT 1`` per queue
    (``ix_tasks_oldest``), skipping tasks of cases the reader may not see."""
    heads = []
    for name in names:
        head = select(WorkTask.queue, WorkTask.created_at).where(WorkTask.queue == name, QUEUED)
        if clause is not None:
            head = head.join(Case, Case.id == WorkTask.case_id).where(clause)
        heads.append(head.order_by(WorkTask.created_at).limit(1).subquery().select())
    found: dict[str, datetime] = {}
    for row in session.execute(union_all(*heads)):
        value = datetime.fromisoformat(row[1]) if isinstance(row[1], str) else row[1]
        found[row[0]] = value
    return found


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cursor(task: WorkTask) -> str:
    raw = json.dumps([task.urgency, task.due_at.isoformat(), task.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(after: str) -> tuple[int, datetime, int]:
    try:
        urgency, due, task_id = json.loads(base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)))
        return int(urgency), datetime.fromisoformat(due), int(task_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("after is not a cursor this server handed out: pass next_after of the previous "
                           "page unchanged, or leave it out for the first page") from exc


def queue_tasks(session: Session, *, actor: Actor, queue: str, after: str | None = None,
                limit: int = 50) -> TaskPage:
    """A page of ``queue``'s waiting tasks in get-next order (keyset on urgency, due, id)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    info = queue_index(session).get(queue)
    if info is None:
        raise NotFound(f"no queue {queue!r} in the loaded case types; see `casework queue list`")
    if not sees_all_cases(actor) and info.team not in actor.teams:
        raise Forbidden(f"queue {queue!r} is worked by team {info.team}; your teams are "
                        f"{', '.join(actor.teams) or 'none'}")
    stmt = select(WorkTask).where(WorkTask.queue == queue, QUEUED)
    if after:
        u, d, i = _uncursor(after)
        stmt = stmt.where(or_(WorkTask.urgency < u, and_(WorkTask.urgency == u, WorkTask.due_at > d),
                              and_(WorkTask.urgency == u, WorkTask.due_at == d, WorkTask.id > i)))
    clause = visible_case_clause(actor)
    if clause is not None:
        stmt = stmt.join(Case, Case.id == WorkTask.case_id).where(clause)
    rows = list(session.scalars(stmt.order_by(WorkTask.urgency.desc(), WorkTask.due_at, WorkTask.id)
                                .limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(queue=queue, tasks=task_views(session, rows),
                    next_after=_cursor(rows[-1]) if more and rows else None)
