"""``/search``: the query box, facets as links, highlighted snippets and cursor paging; a "sent or
scanned" date range (the item's own date: an email's Date header, a scan's capture time).

The page runs the REST route's own function (``api.search_routes.search``): the same query
model, the same index filter and the same check of every hit against the store, so a page can
never show a document the API would not.  An item id or a web-form receipt number finds that item.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from markupsafe import Markup, escape
from starlette.responses import Response

from api import search_routes
from api.web.session_auth import Page, runtime_of
from api.web.templating import render
from api.web.visibility import may_see_item
from casestore.errors import CaseStoreError
from casestore.item_lookup import ItemHit, find_items, looks_like_item

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
FACETS = {"channel": "Channel", "doc_type": "Type", "case_status": "Case status"}
DATES = {"": "Any time", "1": "Today", "7": "Last 7 days", "30": "Last 30 days", "365": "Last year"}
_DAY = r"^(|\d{4}-\d{2}-\d{2})$"  # what <input type="date"> sends: YYYY-MM-DD, or nothing
_HIGHLIGHT = re.compile(r"</?b>")


def highlight(snippet: str) -> Markup:
    """The index's snippet (escaped text with <b> around matches) rebuilt from its text: every
    piece is unescaped then escaped again, and only our own <mark> is markup."""
    pieces = _HIGHLIGHT.split(snippet)
    out = []
    for n, piece in enumerate(pieces):
        text = escape(html.unescape(piece))
        out.append(Markup("<mark>{}</mark>").format(text) if n % 2 else text)
    return Markup("").join(out)


def _since(days: str) -> str | None:
    if not days:
        return None
    today = datetime.now(UTC).date()
    return (today - timedelta(days=int(days) - 1)).isoformat()


@router.get("/search")
def search_page(
    request: Request,
    page: Page,
    q: Annotated[str, Query(max_length=1000)] = "",
    channel: Annotated[str, Query(max_length=50)] = "",
    doc_type: Annotated[str, Query(max_length=100)] = "",
    case_status: Annotated[str, Query(max_length=20)] = "",
    days: Annotated[str, Query(pattern="^(|1|7|30|365)$")] = "",
    sort: Annotated[str, Query(pattern="^(relevance|date)$")] = "relevance",
    dated_from: Annotated[str, Query(pattern=_DAY, description="sent or scanned on or after")] = "",
    dated_to: Annotated[str, Query(pattern=_DAY, description="sent or scanned on or before")] = "",
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    params = {"q": q, "channel": channel, "doc_type": doc_type, "case_status": case_status, "days": days,
              "sort": sort, "dated_from": dated_from, "dated_to": dated_to}
    result: dict[str, Any] | None = None
    error = ""
    items: list[ItemHit] = []
    if q.strip() and looks_like_item(q):
        with runtime_of(request).read_sessions() as session:
            items = [hit for hit, case in find_items(session, text=q)
                     if may_see_item(session, page.user, hit.item_id, case)]
    searched = bool(q.strip() or channel or doc_type or case_status or days or dated_from or dated_to)
    if searched:
        try:
            result = search_routes.search(
                request, runtime_of(request).search_index, page.user, q=q, limit=PAGE_SIZE, cursor=cursor,
                channel=[channel] if channel else None, doc_type=[doc_type] if doc_type else None,
                case_status=[case_status] if case_status else None, customer=None, case_ref=None,
                date_from=_since(days), date_to=None, dated_from=dated_from or None, dated_to=dated_to or None,
                sort=sort,  # type: ignore[arg-type]
                fuzzy=False, like=None)
        except HTTPException as exc:
            error = str(exc.detail)
        except CaseStoreError as exc:
            error = str(exc)

    def link(**changes: str) -> str:
        values = {**params, **changes}
        return "/search?" + urlencode({k: v for k, v in values.items() if v})

    hits = [{**h, "snippet_html": highlight(h["snippet"])} for h in (result or {}).get("hits", [])]
    return render(request, "search.html", {
        "q": q, "params": params, "result": result, "hits": hits, "error": error, "items": items,
        "facets": FACETS, "dates": DATES, "link": link, "searched": searched, "nav": "search",
        "next_link": link(cursor=result["next_cursor"]) if result and result.get("next_cursor") else None,
    }, page=page)
