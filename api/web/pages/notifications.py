"""``/notifications``: the signed-in person's notification feed (SLA warnings and breaches an
escalation addressed to their role, on cases their teams may see), newest first, unread marked;
"Mark all as read" posts the read mark (CSRF checked as every form).  The same service as
``GET /api/v1/notifications`` (``casestore.work.notifications``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from api.params import MAX_DB_INT
from api.web.notices import notice_for
from api.web.session_auth import Page, PageError, runtime_of
from api.web.templating import render
from casestore.errors import CaseStoreError
from casestore.work import notifications

router = APIRouter(include_in_schema=False)


@router.get("/notifications")
def feed_page(request: Request, page: Page, before: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
              done: Annotated[str, Query(max_length=40)] = "") -> Response:
    with runtime_of(request).read_sessions() as session:
        try:
            feed = notifications.feed(session, page.user, before=before)
        except CaseStoreError as exc:
            raise PageError(int(exc.http_status), str(exc)) from None
    return render(request, "notifications.html", {
        "feed": feed, "paged": before is not None, "nav": "notifications", "notice": notice_for(done),
        "notice_count": feed.unread}, page=page)


@router.post("/notifications/seen")
def mark_seen(request: Request, page: Page,
              up_to: Annotated[int | None, Form(ge=0, le=MAX_DB_INT)] = None) -> Response:
    """Mark the notices read up to ``up_to`` (the newest the page showed), then back to the feed."""
    with runtime_of(request).sessions() as session, session.begin():
        try:
            notifications.mark_seen(session, page.user, up_to=up_to)
        except CaseStoreError as exc:
            raise PageError(int(exc.http_status), str(exc)) from None
    cache = getattr(request.app.state, "notice_counts", None)
    if cache is not None:
        cache.forget(page.user.name)
    return Response(status_code=303, headers={"Location": "/notifications?done=notices_seen"})
