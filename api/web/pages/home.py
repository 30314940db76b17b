"""``/``: where a person lands after signing in: my work (get-next, the tasks I hold with their
SLA clocks, the queues I may work with their counts; see ``api.web.pages.work``) and the triage
backlog.  ``/cases``: recently active cases they may see.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from api.web.notices import notice_for
from api.web.pages.work import my_work
from api.web.session_auth import Page, PageContext, runtime_of
from api.web.templating import render
from api.web.visibility import may_see
from casestore import case_view, intake_stats
from casestore.models import Case

router = APIRouter(include_in_schema=False)
RECENT = 50
SCAN_BATCH = 500
MAX_SCANNED = 5000


def start_context(request: Request, page: PageContext) -> dict[str, Any]:
    with runtime_of(request).read_sessions() as session:
        backlog = intake_stats.triage_backlog(session)
    return {"backlog": backlog, "nav": "start", **my_work(request, page)}


@router.get("/")
def start(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    return render(request, "home.html", {**start_context(request, page), "notice": notice_for(done)}, page=page)


@router.get("/cases")
def recent_cases(request: Request, page: Page) -> Response:
    """The most recently updated cases the viewer may see (the access rule applied to each)."""
    found: list[case_view.CaseSummary] = []
    scanned = 0
    with runtime_of(request).read_sessions() as session:
        while len(found) < RECENT and scanned < MAX_SCANNED:
            batch = list(session.scalars(select(Case).order_by(Case.updated_at.desc(), Case.id.desc())
                                         .offset(scanned).limit(SCAN_BATCH)))
            if not batch:
                break
            scanned += len(batch)
            found += [case_view.summary(c) for c in batch if may_see(page.user, c)]
    return render(request, "cases.html", {"cases": found[:RECENT], "nav": "cases"}, page=page)
