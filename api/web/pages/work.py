"""My work and the queues: what the start page shows of a person's work, "Get next" (``POST
/work/next``, the key ``n``), a queue's waiting tasks (``/queues/{name}``), and claiming or
releasing a task from there.

Every action is the REST route's own function (``api.queue_routes``: the same service, the same
checks); what it would answer as a 4xx is shown on the page instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from api import queue_routes
from api.web.counts_cache import Counted, CountsCache
from api.web.refusals import Refusal, attempt
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.sla import ShownClock, show_clock, worst
from api.web.templating import render
from casestore import access
from casestore.models import utcnow
from casestore.work.queue_views import QueueSummary, TaskView
from casestore.work.views import tasks_with_clocks

router = APIRouter(include_in_schema=False)
QUEUE_PAGE = 50


@dataclass(frozen=True)
class TaskRow:
    task: TaskView
    title: str
    clocks: list[ShownClock]

    @property
    def state(self) -> str:
        return worst(self.clocks)


def task_rows(request: Request, tasks: list[TaskView]) -> list[TaskRow]:
    """Each task with its title and every running or paused SLA clock of its case (first
    response, resolution...), as shown."""
    now = utcnow()
    with runtime_of(request).read_sessions() as session:
        extra = tasks_with_clocks(session, tasks=[(t.case_id, t.name) for t in tasks])
    rows = []
    for t in tasks:
        found = extra.get((t.case_id, t.name))
        clocks = [show_clock(c, now) for c in (found.clocks if found else []) if c.state != "stopped"]
        rows.append(TaskRow(task=t, title=(found.title if found else "") or t.name.replace("_", " "), clocks=clocks))
    return rows


def case_link(ref: str, task_id: int | None = None, done: str = "") -> str:
    """The case page; with a task, its page starts with the focus on that task (no ``#work``:
    the browser's scroll to a fragment after load would take the focus away again)."""
    query = "&".join(p for p in (f"task={task_id}" if task_id else "", f"done={done}" if done else "") if p)
    return f"/cases/{quote(ref, safe='')}" + (f"?{query}" if query else "") + ("" if task_id else "#work")


def see_other(request: Request, location: str) -> Response:
    """After an action: htmx follows ``HX-Redirect`` (a full page load), a plain form a 303."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def queue_counts(request: Request, page: PageContext, only: list[str] | None = None) -> Counted[list[QueueSummary]]:
    """``GET /api/v1/queues``'s counts for the viewer, kept a few seconds (``api.web.counts_cache``)."""
    cache: CountsCache[list[QueueSummary]] = request.app.state.queue_counts
    user = page.user
    key = (access.sees_all(user), tuple(sorted(user.teams)), user.disabled, tuple(only) if only else None)
    return cache.get(key, lambda: queue_routes.queue_list(request, user, queue=only))


def my_work(request: Request, page: PageContext) -> dict[str, Any]:
    """The start page's work block: the tasks I hold with their clocks, the queues I may work."""
    mine = queue_routes.my_work(request, page.user)
    counts = queue_counts(request, page)
    return {"my_tasks": task_rows(request, mine), "queues": counts.value, "counts_at": counts.read_at}


def _start_with(request: Request, page: PageContext, refusal: Refusal) -> Response:
    from api.web.pages.home import start_context

    context = {**start_context(request, page), "problem": refusal.message}
    return render(request, "home.html", context, page=page, status_code=refusal.status)


@router.post("/work/next")
def get_next(request: Request, page: Page) -> Response:
    """Claim the next task (``POST /api/v1/work/next``) and open its case; nothing waiting: back
    to the start page, saying so."""
    got = attempt(lambda: queue_routes.next_work(runtime_of(request), queue_routes.actor_of(page.user)))
    if isinstance(got, Refusal):
        return _start_with(request, page, got)
    if got.task is None:
        return see_other(request, "/?done=nothing_waiting")
    return see_other(request, case_link(got.task.case_ref, got.task.id))


@router.post("/tasks/{task_id}/claim")
def claim(request: Request, task_id: int, page: Page) -> Response:
    got = attempt(lambda: queue_routes.claim(request, task_id, page.user))
    if isinstance(got, Refusal):
        return _start_with(request, page, got)
    return see_other(request, case_link(got.case_ref, got.id))


@router.post("/tasks/{task_id}/release")
def release(request: Request, task_id: int, page: Page,
            reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    got = attempt(lambda: queue_routes.release(request, task_id, page.user, queue_routes.Release(reason=reason)))
    if isinstance(got, Refusal):
        return _start_with(request, page, got)
    return see_other(request, "/?done=released")


@router.get("/queues/{name}")
def queue_page(request: Request, name: str, page: Page,
               after: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """A queue's waiting tasks in get-next order, a page at a time, with their SLA clocks."""
    got = attempt(lambda: queue_routes.queue_tasks(request, name, page.user, after=after, limit=QUEUE_PAGE))
    if isinstance(got, Refusal):
        raise PageError(got.status, got.message)
    counts = queue_counts(request, page, only=[name])
    return render(request, "queue.html", {
        "name": name, "summary": next(iter(counts.value), None), "counts_at": counts.read_at,
        "rows": task_rows(request, got.tasks), "after": after, "next_after": got.next_after, "nav": "start",
    }, page=page)
