"""``GET /api/v1/search``: full-text search over the documents the caller may see.

Include with ``app.include_router(search_routes.router)``; the index comes from
``request.app.state.runtime.search_index``.  Integration accounts (systems that upload) get 403:
search is for people working cases.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from api.auth import Principal, current_user
from api.params import date_bound
from casestore import access
from casestore.search.port import MAX_DOCUMENT_ID, MAX_LIMIT, SearchIndex, SearchQuery, Viewer

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["search"])

SEARCH_ROLES = ("agent", "supervisor", "admin")


class SearchHitOut(BaseModel):
    document_id: int
    item_id: str
    case_ref: str | None
    title: str
    snippet: str
    score: float | None
    received_at: datetime
    sent_at: datetime | None = None  # the email's own Date header
    captured_at: datetime | None = None  # a scan's capture time, as the scanner recorded it
    channel: str
    doc_type: str


class SearchOut(BaseModel):
    total: int
    hits: list[SearchHitOut]
    facets: dict[str, dict[str, int]]
    next_cursor: str | None


def get_search_index(request: Request) -> SearchIndex:
    index: SearchIndex = request.app.state.runtime.search_index
    return index


def _bound(value: str | None, name: str, *, end: bool) -> datetime | None:
    try:
        return date_bound(value, end=end)
    except ValueError:
        raise HTTPException(422, f"{name} {value!r} is not ISO 8601 (2024-03-31 or 2024-03-31T14:05:00Z)") from None


def _many(values: list[str] | None) -> tuple[str, ...]:
    """Repeated parameters and comma-separated values alike: ``channel=email,sms``."""
    return tuple(v.strip() for raw in values or [] for v in raw.split(",") if v.strip())


@router.get("/search", response_model=SearchOut)
def search(
    request: Request,
    index: Annotated[SearchIndex, Depends(get_search_index)],
    user: Annotated[Principal, Depends(current_user)],
    q: Annotated[str, Query(max_length=1000, description='words, "phrases", AND/OR/NOT, -word, ( )')] = "",
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    doc_type: Annotated[list[str] | None, Query()] = None,
    case_status: Annotated[list[str] | None, Query()] = None,
    customer: Annotated[str | None, Query(description="customer id (CRM)")] = None,
    case_ref: Annotated[str | None, Query()] = None,
    date_from: Annotated[str | None, Query(description="received on or after (ISO date or date-time)")] = None,
    date_to: Annotated[str | None, Query(description="received before; a bare date includes that day")] = None,
    dated_from: Annotated[str | None, Query(description="the item's own date (an email's Date header, a scan's "
                                                        "capture time) on or after (ISO date or date-time)")] = None,
    dated_to: Annotated[str | None, Query(description="the item's own date before; a bare date includes that "
                                                      "day")] = None,
    sort: Annotated[Literal["relevance", "date"], Query()] = "relevance",
    fuzzy: Annotated[bool, Query(description="tolerate typos and OCR noise")] = False,
    like: Annotated[int | None, Query(ge=1, le=MAX_DOCUMENT_ID,
                                      description="document id: find documents like it")] = None,
) -> dict[str, Any]:
    if user.role not in SEARCH_ROLES:
        raise HTTPException(403, f"role {user.role} may not search; needs one of: {', '.join(SEARCH_ROLES)}")
    query = SearchQuery(
        text=q, channels=_many(channel), doc_types=_many(doc_type), case_statuses=_many(case_status),
        customer_id=customer or None, case_ref=case_ref or None,
        date_from=_bound(date_from, "date_from", end=False), date_to=_bound(date_to, "date_to", end=True),
        dated_from=_bound(dated_from, "dated_from", end=False), dated_to=_bound(dated_to, "dated_to", end=True),
        fuzzy=fuzzy, sort=sort, limit=limit, cursor=cursor or None, like_document_id=like,
    )
    result = index.search(query, Viewer(role=user.role, teams=user.teams, disabled=user.disabled))
    # The index filters by the teams it recorded; the store has the last word (casestore.access):
    # a hit whose case has since moved out of the viewer's teams (an index update that failed or
    # lags) is dropped, and so is a triage item that names another team's case or customer (the
    # index holds triage documents as the shared queue; the access rule is finer than its ACL).
    with request.app.state.runtime.read_sessions() as session:
        hidden = access.items_hidden_from(session, user, sorted({h.item_id for h in result.hits}))
    if hidden:
        log.info("%d search hit(s) dropped by the store's access rule (a triage item of another team, "
                 "or a stale index: run `casework reindex` if cases moved teams)", len(hidden))
    hits = [h for h in result.hits if h.item_id not in hidden]
    return {
        "total": result.total - (len(result.hits) - len(hits)),
        "hits": [
            {"document_id": h.document_id, "item_id": h.item_id, "case_ref": h.case_ref, "title": h.title,
             "snippet": h.snippet, "score": h.score, "received_at": h.received_at, "sent_at": h.sent_at,
             "captured_at": h.captured_at, "channel": h.channel,
             "doc_type": h.doc_type}
            for h in hits
        ],
        "facets": result.facets,
        "next_cursor": result.next_cursor,
    }
