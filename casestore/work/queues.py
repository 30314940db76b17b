"""Work queues: get-next, claim a named task, release, renew a lease, my work, the lease reaper.

Ordering of a queue is ``urgency DESC, due_at, id`` over queued tasks (the partial index
``ix_tasks_pick``).  get-next looks at each queue the actor's teams work separately, one indexed
``LIMIT 1`` per queue, and takes the best of those heads: one query sorting many queues at once
measured 1.4 s per call at a million tasks, against 0.2 ms per queue.  The heads, the choice and
the claim are one statement (``casestore.work.pick``), so a call is two round trips.

Never the same task to two agents:

* PostgreSQL: each head is read ``FOR UPDATE OF t SKIP LOCKED``, so concurrent callers skip the
  rows another caller is looking at, and the claim is an ``UPDATE`` of a row we hold.
* SQLite: the store's sessions begin ``BEGIN IMMEDIATE`` (``casestore.db``), so the read and the
  update run under the one writer lock.
* Both: the claim is guarded (``UPDATE ... WHERE id = ? AND state = 'queued'``), so even a session
  begun DEFERRED cannot claim a task twice: it gets nothing (or SQLite's busy error) instead.
* Named claims, releases and renewals lock the task row (``SELECT ... FOR UPDATE``) first.

Leases: a claim sets ``state='active'``, the assignee, ``lease_expires_at = now + the queue's
lease`` and ``lease_version + 1``; ``renew`` needs the current ``lease_version`` (409 when stale);
``reap_expired_leases`` returns tasks whose lease ran out to their queue.  Every transition writes
one audit event (``task.claimed``, ``task.released``, ``task.lease_expired``); a renewal is not a
transition and writes none.

Conditions that a partial index depends on are written as SQL literals (``QUEUED``, ``ACTIVE``):
a bound parameter would keep SQLite, and PostgreSQL's generic plans for prepared statements,
from using the partial indexes.

Services flush, never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, Select, func, select, text, update
from sqlalchemy.orm import Session

from casestore import audit
from casestore.db import WriterBusy
from casestore.errors import Conflict, Forbidden, InvalidInput, NotFound
from casestore.models import Case
from casestore.work import pick
from casestore.work.actor import Actor
from casestore.work.models import NO_DUE, WorkTask
from casestore.work.queue_index import (
    DEFAULT_LEASE,
    QueueIndex,
    QueueInfo,
    Stamp,
    cached_index_of,
    cached_queue_index,
    index_stamp,
    queue_index,
)
from casestore.work.visibility import sees_all_cases, visible_case_clause

log = logging.getLogger(__name__)

QUEUED: ColumnElement[bool] = text("tasks.state = 'queued'")  # type: ignore[assignment]
ACTIVE: ColumnElement[bool] = text("tasks.state = 'active'")  # type: ignore[assignment]
DEFAULT_MAX_ACTIVE = 5
_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _check_actor(actor: Actor) -> None:
    if actor.disabled:
        raise Forbidden(f"user {actor.name!r} is disabled; an administrator can enable it")


def _visible(stmt: _S, actor: Actor) -> _S:
    clause = visible_case_clause(actor)
    if clause is None:
        return stmt
    return stmt.join(Case, Case.id == WorkTask.case_id).where(clause)


def active_count(session: Session, *, actor: Actor) -> int:
    """How many tasks ``actor`` holds (the partial index ``ix_tasks_assignee``)."""
    return int(session.scalar(select(func.count()).select_from(WorkTask)
                              .where(ACTIVE, WorkTask.assignee == actor.name)) or 0)


def _refuse_past_cap(actor: Actor, held: int, max_active: int) -> None:
    if held >= max_active:
        raise Conflict(f"{actor.name} holds {held} active task(s), the most an agent may hold at once "
                       f"({max_active}); complete or release one first (casework work mine --as {actor.name})")


def _claimed(session: Session, task: WorkTask, actor: Actor, how: str) -> WorkTask:
    audit.record_many(session, [{  # one row, written with a Core insert: no unit-of-work flush per claim
        "actor": actor.name, "action": "task.claimed", "case_id": task.case_id,
        "details": {"task_id": task.id, "task": task.name, "queue": task.queue, "how": how,
                    "lease_version": task.lease_version, "lease_expires_at": task.lease_expires_at}}])
    log.info("task %d (%s) claimed by %s via %s, lease until %s", task.id, task.queue, actor.name, how,
             task.lease_expires_at)
    return task


def get_next(session: Session, *, actor: Actor, now: datetime, max_active: int = DEFAULT_MAX_ACTIVE) -> WorkTask | None:
    """Claim the best queued task of the queues ``actor``'s teams work, skipping tasks of cases
    the actor may not see; None when there is nothing.  Conflict when the actor holds
    ``max_active`` tasks already; Forbidden for a disabled actor.  Two statements (``pick``)."""
    claimed = next_claim(session, actor=actor, now=now, max_active=max_active)
    return claimed.task if claimed is not None else None


def next_claim(session: Session, *, actor: Actor, now: datetime,
               max_active: int = DEFAULT_MAX_ACTIVE) -> pick.Claimed | None:
    """``get_next``, with the claimed task's case reference and type (what its view needs), read by
    the claim's own statement on PostgreSQL."""
    _check_actor(actor)
    held, stamp = pick.guard(session, actor)
    workable = queue_index(session, stamp).workable_by(actor)
    if not workable:
        return None
    _refuse_past_cap(actor, held, max_active)
    teams = None if sees_all_cases(actor) else actor.teams
    claimed = pick.claim_best(session, queues=workable, actor=actor, visible_teams=teams, now=now)
    if claimed is None:  # nothing waiting (a lost race is impossible under the row locks / writer lock)
        return None
    task = claimed.task
    log.info("task %d (%s) claimed by %s via get_next, lease until %s", task.id, task.queue, actor.name,
             task.lease_expires_at)
    return claimed


def next_claim_in_one_statement(session: Session, *, actor: Actor, now: datetime,
                                max_active: int = DEFAULT_MAX_ACTIVE) -> pick.Claimed | None:
    """``next_claim`` on PostgreSQL as one statement (``casework_get_next``, migration 0016), for a
    session in autocommit: the function's call is its own transaction, committed when it returns.
    The queue index is the one cached in this process; the function refuses to claim when the
    stored definitions are newer (then the index is rebuilt and the call made once more)."""
    def claim(workable: list[QueueInfo], stamp: Stamp, teams: tuple[str, ...] | None) -> pick.NextOutcome:
        return pick.get_next_in_one_statement(session, queues=workable, stamp=stamp, actor=actor,
                                              visible_teams=teams, now=now, max_active=max_active)

    claimed = _in_one_statement(actor, cached_queue_index(session), lambda: _fresh_index(session), claim,
                                max_active)
    assert claimed is None or isinstance(claimed, pick.Claimed)
    return claimed


def next_claim_pg(cursor: Any, *, engine: Engine, read_sessions: Callable[[], Session], actor: Actor,
                  now: datetime, max_active: int = DEFAULT_MAX_ACTIVE) -> pick.ClaimedRow | None:
    """``next_claim_in_one_statement`` on a driver cursor in autocommit (``casestore.db.driver_cursor``):
    the same statement, rules and retries without a ``Session`` per call (``casework serve``'s
    get-next on PostgreSQL).  A queue index to rebuild is read from a ``read_sessions`` session."""
    def claim(workable: list[QueueInfo], stamp: Stamp, teams: tuple[str, ...] | None) -> pick.NextOutcome:
        return pick.get_next_on(cursor, engine.dialect, queues=workable, stamp=stamp, actor=actor,
                                visible_teams=teams, now=now, max_active=max_active)

    def fresh() -> tuple[Stamp, QueueIndex]:
        with read_sessions() as session:
            return _fresh_index(session)

    claimed = _in_one_statement(actor, cached_index_of(engine), fresh, claim, max_active)
    assert claimed is None or isinstance(claimed, pick.ClaimedRow)
    return claimed


def _fresh_index(session: Session) -> tuple[Stamp, QueueIndex]:
    stamp = index_stamp(session)
    return stamp, queue_index(session, stamp)


def _in_one_statement(actor: Actor, known: tuple[Stamp, QueueIndex] | None,
                      fresh: Callable[[], tuple[Stamp, QueueIndex]],
                      claim: Callable[[list[QueueInfo], Stamp, tuple[str, ...] | None], pick.NextOutcome],
                      max_active: int) -> pick.Claimed | pick.ClaimedRow | None:
    """The rules of get-next in one statement, whichever way ``claim`` runs it: the actor's checks,
    the queue index (``known``, else ``fresh``; rebuilt when the statement says ``stale``), the cap."""
    _check_actor(actor)
    teams = None if sees_all_cases(actor) else actor.teams
    for _ in range(3):
        is_fresh = known is None
        if known is None:
            known = fresh()
        stamp, index = known
        workable = index.workable_by(actor)
        if not workable:
            if is_fresh:
                return None
            known = None  # none in the cached index: maybe the definitions changed since
            continue
        done = claim(workable, stamp, teams)
        if done.outcome == "stale":
            known = None
            continue
        if done.outcome == "cap":
            _refuse_past_cap(actor, done.held, max_active)
        break
    else:
        raise Conflict("the case-type definitions changed while get-next ran; call get-next again")
    claimed = done.claimed
    if claimed is None:
        return None
    task = claimed.task
    log.debug("task %d (%s) claimed by %s via get_next, lease until %s", task.id, task.queue, actor.name,
              task.lease_expires_at)
    return claimed


def next_claim_sqlite(cursor: Any, *, engine: Engine, read_sessions: Callable[[], Session], actor: Actor,
                      now: datetime, max_active: int = DEFAULT_MAX_ACTIVE,
                      may_rebuild: bool = True) -> pick.ClaimedRow | None:
    """``next_claim`` on SQLite on a driver cursor inside ``BEGIN IMMEDIATE``
    (``casestore.db.sqlite_immediate``): the same three statements (guard, claim, audit event)
    under the same writer lock, without SQLAlchemy's execution layer.  The queue index is this
    process's cached one while the stored definitions' stamp matches it; else it is rebuilt from
    a read session (``read_sessions``: reads only, so it never waits for the writer lock we hold).
    ``may_rebuild=False`` (a caller on the event loop): ``WriterBusy`` instead of a rebuild, which
    parses every stored definition; nothing is done, the caller tries again where it may wait."""
    _check_actor(actor)
    held, stamp = pick.guard_sqlite(cursor, actor, engine.dialect)
    known = cached_index_of(engine)
    if known is not None and known[0] == stamp:
        index = known[1]
    elif not may_rebuild:
        raise WriterBusy("the queue index is older than the stored definitions: rebuild it off the event loop")
    else:
        with read_sessions() as session:
            index = queue_index(session, stamp)
    workable = index.workable_by(actor)
    if not workable:
        return None
    _refuse_past_cap(actor, held, max_active)
    teams = None if sees_all_cases(actor) else actor.teams
    claimed = pick.claim_best_sqlite(cursor, dialect=engine.dialect, queues=workable, actor=actor,
                                     visible_teams=teams, now=now)
    if claimed is not None:
        task = claimed.task
        log.debug("task %d (%s) claimed by %s via get_next, lease until %s", task.id, task.queue, actor.name,
                  task.lease_expires_at)
    return claimed


def _task_for(session: Session, *, task_id: int, actor: Actor) -> WorkTask:
    """The task, locked, if ``actor`` may see its case; NotFound otherwise (never says it exists)."""
    stmt = _visible(select(WorkTask.id).where(WorkTask.id == task_id), actor)
    if session.scalar(stmt) is None:
        raise NotFound(f"no task {task_id} (or its case is not visible to you); check the id (casework work mine)")
    task = session.get(WorkTask, task_id, with_for_update=True, populate_existing=True)
    if task is None:  # deleted with its case meanwhile
        raise NotFound(f"no task {task_id}; check the id (casework work mine)")
    return task


def claim(session: Session, *, task_id: int, actor: Actor, now: datetime,
          max_active: int = DEFAULT_MAX_ACTIVE) -> WorkTask:
    """Claim the named task.  Claiming a task one holds already returns it unchanged.

    NotFound if the task does not exist or its case is hidden from ``actor``; Forbidden when no
    team of an agent works its queue (supervisors and admins may claim from any queue);
    Conflict when someone else holds it, it is finished, or the cap is reached."""
    _check_actor(actor)
    task = _task_for(session, task_id=task_id, actor=actor)
    if task.state == "active" and task.assignee == actor.name:
        return task
    queue = queue_index(session).get(task.queue)
    if not sees_all_cases(actor) and (queue is None or queue.team not in actor.teams):
        team = queue.team if queue is not None else "no team (the queue is in no loaded definition)"
        raise Forbidden(f"task {task_id} is in queue {task.queue!r}, worked by {team}; your teams are "
                        f"{', '.join(actor.teams) or 'none'}: ask a supervisor to reassign it to you")
    if task.state == "active":
        until = task.lease_expires_at.isoformat(timespec="seconds") if task.lease_expires_at else "released"
        raise Conflict(f"task {task_id} is held by {task.assignee} (lease until {until}); "
                       "get another with `casework work next`, or ask a supervisor to reassign it")
    if task.state != "queued":
        raise Conflict(f"task {task_id} is {task.state}; there is nothing to claim")
    _refuse_past_cap(actor, pick.guard(session, actor)[0], max_active)
    task.state, task.assignee = "active", actor.name
    task.lease_expires_at = now + (queue.lease if queue is not None else DEFAULT_LEASE)
    task.lease_version += 1
    session.flush()
    return _claimed(session, task, actor, "claim")


def _held_by(session: Session, *, task_id: int, actor: Actor) -> WorkTask:
    task = _task_for(session, task_id=task_id, actor=actor)
    if task.state != "active":
        raise Conflict(f"task {task_id} is {task.state}, not held by anyone; claim it first "
                       f"(casework task claim {task_id})")
    if task.assignee != actor.name:
        raise Conflict(f"task {task_id} is held by {task.assignee}, not by you")
    return task


def release(session: Session, *, task_id: int, actor: Actor, reason: str = "") -> WorkTask:
    """Give a held task back to its queue (state queued, no assignee, no lease); task.released.
    Conflict when ``actor`` does not hold it."""
    _check_actor(actor)
    task = _held_by(session, task_id=task_id, actor=actor)
    task.state, task.assignee, task.lease_expires_at = "queued", None, None
    session.flush()
    audit.record(session, actor=actor.name, action="task.released", reason=reason, case_id=task.case_id,
                 details={"task_id": task.id, "task": task.name, "queue": task.queue,
                          "lease_version": task.lease_version})
    log.info("task %d released by %s", task.id, actor.name)
    return task


def renew(session: Session, *, task_id: int, actor: Actor, lease_version: int, now: datetime) -> WorkTask:
    """Extend the lease ``actor`` holds on a task to ``now + the queue's lease``.

    Conflict (409) when the lease is stale: the task was released, expired or claimed again since
    ``lease_version`` was handed out (claim it again), or the lease has run out already."""
    _check_actor(actor)
    task = _task_for(session, task_id=task_id, actor=actor)
    if task.state != "active" or task.assignee != actor.name or task.lease_version != lease_version:
        raise Conflict(f"your lease on task {task_id} (version {lease_version}) is stale: the task is "
                       f"{task.state}" + (f", held by {task.assignee} (version {task.lease_version})"
                                          if task.state == "active" else "")
                       + "; claim it again if it is still queued")
    if task.lease_expires_at is not None and task.lease_expires_at <= now:
        raise Conflict(f"your lease on task {task_id} ran out at {task.lease_expires_at.isoformat()}; "
                       "it goes back to its queue: claim it again")
    if task.lease_expires_at is not None:  # None: held until released (a reassignment); nothing to extend
        task.lease_expires_at = now + queue_index(session).lease_of(task.queue)
        session.flush()
    return task


def my_work(session: Session, *, actor: Actor) -> list[WorkTask]:
    """The tasks ``actor`` holds, most urgent first."""
    return list(session.scalars(
        select(WorkTask).where(ACTIVE, WorkTask.assignee == actor.name)
        .order_by(WorkTask.urgency.desc(), WorkTask.due_at, WorkTask.id)
    ))


def reap_expired_leases(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Return up to ``limit`` tasks whose lease ran out by ``now`` to their queues (one
    task.lease_expired each); how many.  PostgreSQL skips rows another reaper holds."""
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
    stmt = (select(WorkTask.id, WorkTask.assignee).where(ACTIVE, WorkTask.lease_expires_at <= now)
            .order_by(WorkTask.lease_expires_at).limit(limit))
    if _is_pg(session):
        stmt = stmt.with_for_update(skip_locked=True)
    holders = {int(r[0]): r[1] for r in session.execute(stmt)}  # rows we hold (PostgreSQL) or the writer lock
    if not holders:
        return 0
    rows = session.execute(
        update(WorkTask).where(WorkTask.id.in_(list(holders)), ACTIVE, WorkTask.lease_expires_at <= now)
        .values(state="queued", assignee=None, lease_expires_at=None)
        .returning(WorkTask.id, WorkTask.case_id, WorkTask.name, WorkTask.queue, WorkTask.lease_version),
        execution_options={"synchronize_session": False},
    ).all()
    audit.record_many(session, [
        {"actor": "system", "action": "task.lease_expired", "case_id": case_id,
         "details": {"task_id": tid, "task": name, "queue": queue, "lease_version": version,
                     "assignee": holders.get(tid)}}
        for tid, case_id, name, queue, version in rows
    ])
    _expire_loaded(session, {r[0] for r in rows})
    if rows:
        log.info("%d expired lease(s) returned to their queues", len(rows))
    return len(rows)


def _expire_loaded(session: Session, task_ids: set[int]) -> None:
    """Tasks changed by a bulk UPDATE: loaded copies are reloaded on next access."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, WorkTask) and obj.id in task_ids:
            session.expire(obj)


def due_or_none(task: WorkTask) -> datetime | None:
    """The task's SLA due time, or None for a task of a case with no running clock (``NO_DUE``)."""
    return None if task.due_at >= NO_DUE else task.due_at
