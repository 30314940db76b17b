"""Work queues over HTTP: get-next, my work, queue counts and lists, claim / release / renew a task.

Thin: each route opens one transaction around one service of ``casestore.work`` and returns its
typed view.  Errors are the services' own (404 unknown or hidden, 403 not your queue, 409 held by
someone else, a stale lease or the cap reached), turned into responses by the app's one handler.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, authenticate_request, bearer, check_role, get_runtime, require_roles
from api.params import LeaseVersion, TaskId
from api.wiring import Runtime
from casestore.db import driver_cursor, sqlite_immediate, translate_errors
from casestore.models import utcnow
from casestore.work import queue_reads, queues
from casestore.work.actor import Actor
from casestore.work.queue_views import NextWork, QueueSummary, TaskPage, TaskView

router = APIRouter(prefix="/api/v1", tags=["work queues"])
WORKER_ROLES = ("agent", "supervisor", "admin")
Worker = Annotated[Principal, require_roles(*WORKER_ROLES)]
Supervisor = Annotated[Principal, require_roles("supervisor", "admin")]


def actor_of(user: Principal) -> Actor:
    return Actor(name=user.name, role=user.role, teams=tuple(user.teams), disabled=user.disabled)


class Release(BaseModel):
    reason: str = Field(default="", max_length=2000, description="why: kept in the audit trail")


class Renew(BaseModel):
    lease_version: LeaseVersion


async def next_task(request: Request, background: BackgroundTasks,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
    """Claim the best waiting task of your teams' queues (urgency, then SLA due time, then age).
    Agents, supervisors and admins."""
    # the hottest route: the token check, the role check, the claim and the JSON in ONE threadpool
    # trip (with ``Worker`` as a dependency it was two: the token check, then the claim), and the
    # response written as it is (a returned model would be validated and encoded again); under
    # load each trip waits to win the GIL back (BENCHMARKS.md, issue 10)
    def run() -> bytes:
        user = check_role(authenticate_request(request, background, credentials), WORKER_ROLES)
        return next_work(get_runtime(request), actor_of(user)).model_dump_json().encode()

    return Response(await run_in_threadpool(run), media_type="application/json")


def add_get_next(app: FastAPI) -> None:
    """``POST /api/v1/work/next`` on the app itself, ahead of every included router: FastAPI
    0.165 matches a request against each included router's routes in turn (twice: to choose the
    router, then the route), which was ~15 % of the server's CPU per get-next."""
    app.add_api_route("/api/v1/work/next", next_task, methods=["POST"], response_model=NextWork,
                      tags=["work queues"], summary="Next Task", operation_id="next_task_api_v1_work_next_post")


def next_work(rt: Runtime, actor: Actor, *, wait: bool = True, checkpoint: bool | None = None) -> NextWork:
    """get-next in one transaction (the route above, and the workbench's get-next pages).  On
    PostgreSQL one statement in autocommit (``casework_get_next``): no BEGIN and COMMIT round trips,
    and the claimed row's lock is held for the database's own work only.  ``wait=False`` (SQLite, a
    caller on the event loop): ``WriterBusy``, nothing done, instead of waiting for the writer lock
    or rebuilding the queue index.  ``checkpoint=False`` (SQLite): the commit leaves the WAL
    checkpoint to the caller (``casestore.db.sqlite_immediate``; by default so with ``wait=False``)."""
    max_active = rt.settings.queues.max_active_per_agent
    if rt.engine.dialect.name == "postgresql":  # on the driver's cursor: no Session or execution layer per call
        with translate_errors(), driver_cursor(rt.engine) as cursor:
            claimed = queues.next_claim_pg(cursor, engine=rt.engine, read_sessions=rt.read_sessions, actor=actor,
                                           now=utcnow(), max_active=max_active)
        return NextWork(task=queue_reads.claimed_view(claimed) if claimed is not None else None)
    # SQLite: the claim's three statements on a driver cursor (``queues.next_claim_sqlite``), under
    # the same BEGIN IMMEDIATE and writer turn as ``rt.sessions()`` would take
    with translate_errors(), sqlite_immediate(rt.engine, wait=wait, checkpoint=checkpoint) as cursor:
        row = queues.next_claim_sqlite(cursor, engine=rt.engine, read_sessions=rt.read_sessions, actor=actor,
                                       now=utcnow(), max_active=max_active, may_rebuild=wait)
    # the view is built after the commit: SQLite's writer lock is held no longer than the claim
    return NextWork(task=queue_reads.claimed_view(row) if row is not None else None)


@router.get("/work/mine", response_model=list[TaskView])
def my_work(request: Request, user: Worker) -> list[TaskView]:
    """The tasks you hold, most urgent first."""
    with get_runtime(request).read_sessions() as session:
        return queue_reads.task_views(session, queues.my_work(session, actor=actor_of(user)))


@router.get("/work/held", response_model=list[TaskView])
def held_work(request: Request, user: Supervisor) -> list[TaskView]:
    """Every task someone holds, by assignee then lease expiry (supervisors and admins)."""
    with get_runtime(request).read_sessions() as session:
        return queue_reads.held_tasks(session, actor=actor_of(user))


@router.get("/queues", response_model=list[QueueSummary])
def queue_list(request: Request, user: Worker,
               queue: Annotated[list[str] | None, Query(description="only these queues (repeat)")] = None,
               ) -> list[QueueSummary]:
    """Your teams' queues (every queue for supervisors and admins) with their counts."""
    with get_runtime(request).read_sessions() as session:
        return queue_reads.queue_summaries(session, actor=actor_of(user), now=utcnow(), only=queue)


@router.get("/queues/{name}/tasks", response_model=TaskPage)
def queue_tasks(request: Request, name: str, user: Worker,
                after: Annotated[str | None, Query(description="next_after of the previous page")] = None,
                limit: Annotated[int, Query(ge=1, le=queue_reads.MAX_PAGE)] = 50) -> TaskPage:
    """A queue's waiting tasks in get-next order, a page at a time."""
    with get_runtime(request).read_sessions() as session:
        return queue_reads.queue_tasks(session, actor=actor_of(user), queue=name, after=after, limit=limit)


@router.get("/tasks/{task_id}", response_model=TaskView)
def get_task(request: Request, task_id: TaskId, user: Worker) -> TaskView:
    with get_runtime(request).read_sessions() as session:
        return queue_reads.task_view(session, task_id=task_id, actor=actor_of(user))


@router.post("/tasks/{task_id}/claim", response_model=TaskView)
def claim(request: Request, task_id: TaskId, user: Worker) -> TaskView:
    """Claim this task with a lease; 409 if someone else holds it."""
    rt = get_runtime(request)
    with translate_errors(), rt.sessions() as session, session.begin():
        task = queues.claim(session, task_id=task_id, actor=actor_of(user), now=utcnow(),
                            max_active=rt.settings.queues.max_active_per_agent)
        return queue_reads.task_views(session, [task])[0]


@router.post("/tasks/{task_id}/release", response_model=TaskView)
def release(request: Request, task_id: TaskId, user: Worker, body: Release | None = None) -> TaskView:
    """Give a task you hold back to its queue."""
    with translate_errors(), get_runtime(request).sessions() as session, session.begin():
        task = queues.release(session, task_id=task_id, actor=actor_of(user), reason=body.reason if body else "")
        return queue_reads.task_views(session, [task])[0]


@router.post("/tasks/{task_id}/renew", response_model=TaskView)
def renew(request: Request, task_id: TaskId, body: Renew, user: Worker) -> TaskView:
    """Extend your lease on a task; 409 when the lease is stale (claim the task again)."""
    with translate_errors(), get_runtime(request).sessions() as session, session.begin():
        task = queues.renew(session, task_id=task_id, actor=actor_of(user), lease_version=body.lease_version,
                            now=utcnow())
        return queue_reads.task_views(session, [task])[0]
