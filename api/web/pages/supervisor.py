"""``/supervisor``: the supervisor's dashboard (supervisors and admins): every queue's depth, oldest
waiting task, tasks at risk and breached; every agent with the tasks they hold and when each
claim ends; reassign a held task from there (with a reason, through the case page's action).

The counts and the held tasks are the REST routes' own (``GET /api/v1/queues``, kept a few
seconds as ``api.web.counts_cache`` says, and ``GET /api/v1/work/held``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api import queue_routes
from api.web.notices import notice_for
from api.web.pages.work import queue_counts, task_rows
from api.web.session_auth import Page, PageError, runtime_of
from api.web.templating import render
from casestore import prospects, users
from casestore.work import case_lists

router = APIRouter(include_in_schema=False)
SUPERVISORS = ("supervisor", "admin")
WORKERS = ("agent", "supervisor")


@router.get("/supervisor")
def dashboard(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    if page.user.role not in SUPERVISORS:
        raise PageError(403, "The supervisor dashboard is for supervisors and administrators.")
    counts = queue_counts(request, page)
    queues = counts.value
    held = task_rows(request, queue_routes.held_work(request, page.user))
    with runtime_of(request).read_sessions() as session:
        people = [u for u in users.list_users(session) if not u.disabled and u.role != "integration"]
        reviews = prospects.review_count(session)
        ready = case_lists.ready_to_close_count(session, page.user)
    by_person: dict[str, list[object]] = {u.name: [] for u in people if u.role in WORKERS}
    for row in held:
        by_person.setdefault(row.task.assignee or "", []).append(row)
    teams = {u.name: list(u.teams or []) for u in people}
    return render(request, "supervisor.html", {
        "queues": queues, "agents": sorted(by_person.items(), key=lambda kv: (not kv[1], kv[0])), "teams": teams,
        "people": [u.name for u in people], "held": len(held), "notice": notice_for(done), "nav": "supervisor",
        "counts_at": counts.read_at, "reviews": reviews, "ready_to_close": ready,
        "totals": {k: sum(getattr(q, k) for q in queues) for k in ("open", "waiting", "active", "at_risk", "breached")},
    }, page=page)
