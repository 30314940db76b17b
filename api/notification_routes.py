"""Your notification feed over HTTP: ``GET /api/v1/notifications`` (newest first, paged by id, only
notices of cases your teams may see and addressed to your role or one below it) and ``POST
/api/v1/notifications/seen`` (your read mark).  Thin over ``casestore.work.notifications``; the
workbench's ``/notifications`` page and the header's count call the same service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.auth import Principal, current_user, get_runtime
from api.params import MAX_DB_INT
from casestore.db import translate_errors
from casestore.work import notifications
from casestore.work.notifications import NotificationFeed, SeenMark

router = APIRouter(prefix="/api/v1", tags=["notifications"])
User = Annotated[Principal, Depends(current_user)]


class SeenBody(BaseModel):
    up_to: int | None = Field(default=None, ge=0, le=MAX_DB_INT,
                              description="the newest notice id you have read; omitted: every notice so far")


@router.get("/notifications", response_model=NotificationFeed)
def my_notifications(
    request: Request, user: User,
    before: Annotated[int | None, Query(ge=1, le=MAX_DB_INT, description="next_before of the page before")] = None,
    unread: Annotated[bool, Query(description="only notices above your read mark")] = False,
    limit: Annotated[int, Query(ge=1, le=notifications.MAX_PAGE_SIZE)] = notifications.PAGE_SIZE,
) -> NotificationFeed:
    """Notices addressed to your role (or one below it) on cases you may see, newest first."""
    with translate_errors(), get_runtime(request).read_sessions() as session:
        return notifications.feed(session, user, before=before, limit=limit, unread_only=unread)


@router.post("/notifications/seen", response_model=SeenMark)
def mark_seen(request: Request, user: User, body: SeenBody | None = None) -> SeenMark:
    """Mark your notices read up to ``up_to`` (every one so far without it); the mark never moves back."""
    with translate_errors(), get_runtime(request).sessions() as session, session.begin():
        return notifications.mark_seen(session, user, up_to=body.up_to if body is not None else None)
