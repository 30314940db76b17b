"""Case lists over HTTP: ``GET /api/v1/cases`` (filtered, sorted, paged; only cases your teams may
see) and your saved views (``/api/v1/views``).  Thin over ``casestore.work.case_lists``; the
workbench's ``/cases`` page calls the same services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, current_user, get_runtime
from api.params import MAX_DB_INT
from casestore.db import translate_errors
from casestore.work import case_lists
from casestore.work.case_lists import CaseFilter, CaseListPage, SavedViewOut

router = APIRouter(prefix="/api/v1", tags=["cases"])
User = Annotated[Principal, Depends(current_user)]
ViewId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="the saved view's id")]


class NewView(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="what you call it, unique among your views")
    filters: CaseFilter = Field(default_factory=CaseFilter)
    replace: bool = Field(default=False, description="overwrite your view of the same name")


@router.get("/cases", response_model=CaseListPage)
def list_cases(
    request: Request, user: User,
    status: Annotated[str, Query(max_length=32, description="a work status, 'active' (all but closed) or "
                                 "'ready_to_close' (every stage done, still open)")] = "",
    case_type: Annotated[str, Query(max_length=63)] = "",
    team: Annotated[str, Query(max_length=100)] = "",
    stage: Annotated[str, Query(max_length=63)] = "",
    owner: Annotated[str, Query(max_length=100, description=case_lists.OWNER_HELP)] = "",
    text: Annotated[str, Query(max_length=200, description="words in the reference or subject")] = "",
    sort: Annotated[str, Query(max_length=20, description="updated, opened, oldest or urgency")] = "updated",
    view: Annotated[int | None, Query(ge=1, le=MAX_DB_INT, description="one of your saved views' ids (its "
                                      "filters replace the others)")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=case_lists.MAX_PAGE_SIZE)] = case_lists.PAGE_SIZE,
) -> CaseListPage:
    """The cases you may see that match, one page at a time."""
    with translate_errors(), get_runtime(request).read_sessions() as session:
        if view is not None:
            flt = case_lists.parse_filter(case_lists.get_view(session, user_name=user.name, view_id=view).filters)
        else:
            flt = case_lists.parse_filter({"status": status, "case_type": case_type, "team": team, "stage": stage,
                                           "owner": owner, "text": text, "sort": sort})
        return case_lists.list_cases(session, user, flt, cursor=cursor, limit=limit)


@router.get("/views", response_model=list[SavedViewOut])
def my_views(request: Request, user: User) -> list[SavedViewOut]:
    """Your saved case lists, by name."""
    with translate_errors(), get_runtime(request).read_sessions() as session:
        return case_lists.saved_views(session, user_name=user.name)


@router.post("/views", response_model=SavedViewOut, status_code=201)
def save_view(request: Request, user: User, body: NewView) -> SavedViewOut:
    """Keep a case list's filters and sort under a name (409 if you have one of that name)."""
    with translate_errors(), get_runtime(request).sessions() as session, session.begin():
        return case_lists.save_view(session, user_name=user.name, name=body.name, flt=body.filters,
                                    replace=body.replace)


@router.delete("/views/{view_id}", status_code=204)
def delete_view(request: Request, user: User, view_id: ViewId) -> Response:
    """Delete one of your saved views (404 for anyone else's)."""
    with translate_errors(), get_runtime(request).sessions() as session, session.begin():
        case_lists.delete_view(session, user_name=user.name, view_id=view_id)
    return Response(status_code=204)
