"""``/``: where a person lands after signing in: my work (get-next, the tasks I hold with their
SLA clocks, the queues I may work with their counts; see ``api.web.pages.work``) and the triage
backlog and their saved case lists.  ``/cases``: the cases they may see, filtered and sorted, and
their saved views of them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from api.params import MAX_DB_INT
from api.web.notices import notice_for
from api.web.pages.work import my_work
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import render
from casestore import intake_stats
from casestore.errors import CaseStoreError
from casestore.work import case_lists
from casestore.work.case_lists import CaseFilter
from casestore.work.models import WORK_STATUSES

router = APIRouter(include_in_schema=False)


def start_context(request: Request, page: PageContext) -> dict[str, Any]:
    with runtime_of(request).read_sessions() as session:
        backlog = intake_stats.triage_backlog(session)
    return {"backlog": backlog, "nav": "start", "views": _views(request, page), **my_work(request, page)}


@router.get("/")
def start(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    return render(request, "home.html", {**start_context(request, page), "notice": notice_for(done)}, page=page)


def _views(request: Request, page: PageContext) -> list[case_lists.SavedViewOut]:
    with runtime_of(request).read_sessions() as session:
        return case_lists.saved_views(session, user_name=page.user.name)


@router.get("/cases")
def case_list(request: Request, page: Page, view: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
              cursor: Annotated[str | None, Query(max_length=100)] = None,
              done: Annotated[str, Query(max_length=40)] = "") -> Response:
    """The cases the viewer may see, filtered and sorted (``casestore.work.case_lists``, as
    ``GET /api/v1/cases``), with their saved views: open one, save the list shown, delete one."""
    params = {k: v for k, v in request.query_params.items() if k in CaseFilter.model_fields}
    current: case_lists.SavedViewOut | None = None
    with runtime_of(request).read_sessions() as session:
        try:
            if view is not None:
                current = case_lists.get_view(session, user_name=page.user.name, view_id=view)
                params = dict(current.filters)
            flt = case_lists.parse_filter(params)
            found = case_lists.list_cases(session, page.user, flt, cursor=cursor)
        except CaseStoreError as exc:
            raise PageError(int(exc.http_status), str(exc)) from None
        views = case_lists.saved_views(session, user_name=page.user.name)
    query = {**flt.stored(), **({"view": str(view)} if view else {})}
    return render(request, "cases.html", {
        "cases": found.cases, "next_cursor": found.next_cursor, "filter": flt, "views": views, "current": current,
        "query": query, "statuses": (*case_lists.LIST_STATUSES, *WORK_STATUSES), "sorts": case_lists.SORT_LABELS,
        "nav": "cases",
        "notice": notice_for(done), "paged": cursor is not None}, page=page)


@router.post("/cases/views")
async def save_view(request: Request, page: Page) -> Response:
    """Keep the filters of the list shown under a name (replacing the viewer's view of that name
    when they ticked "replace")."""
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in CaseFilter.model_fields}
    name, replace = str(form.get("name", ""))[:200], form.get("replace") == "1"
    rt = runtime_of(request)
    try:
        with rt.sessions() as session, session.begin():
            saved = case_lists.save_view(session, user_name=page.user.name, name=name,
                                         flt=case_lists.parse_filter(values), replace=replace)
    except CaseStoreError as exc:
        raise PageError(int(exc.http_status), str(exc)) from None
    return Response(status_code=303, headers={"Location": f"/cases?view={saved.id}&done=view_saved"})


@router.post("/cases/views/{view_id}/delete")
def delete_view(request: Request, page: Page, view_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)]) -> Response:
    rt = runtime_of(request)
    try:
        with rt.sessions() as session, session.begin():
            case_lists.delete_view(session, user_name=page.user.name, view_id=view_id)
    except CaseStoreError as exc:
        raise PageError(int(exc.http_status), str(exc)) from None
    return Response(status_code=303, headers={"Location": "/cases?done=view_deleted"})
