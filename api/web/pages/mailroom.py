"""``/mailroom``: the letters the sender has made (PDF filed in the case) waiting to be printed, and
the printed ones waiting to be posted; the mailroom marks each printed, then posted.

Thin over ``api.outbound_routes`` (``letters``, ``mark_letter``): the same access rule (a letter
is listed, and may be marked, exactly when its case is visible), the same audit events.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api import outbound_routes
from api.web.notices import notice_for
from api.web.pages.work import see_other
from api.web.refusals import Refusal, attempt
from api.web.session_auth import Page, PageError
from api.web.templating import render

router = APIRouter(include_in_schema=False)
LIMIT = 500


@router.get("/mailroom")
def mailroom(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    to_print = outbound_routes.letters(request, page.user, state=["to_print"], limit=LIMIT)
    printed = outbound_routes.letters(request, page.user, state=["printed"], limit=LIMIT)
    return render(request, "mailroom.html", {"to_print": to_print, "printed": printed, "nav": "mailroom",
                                             "notice": notice_for(done)}, page=page)


@router.post("/mailroom/{outbound_id}/{action}")
def mark(request: Request, outbound_id: str, action: Literal["printed", "posted"], page: Page) -> Response:
    got = attempt(lambda: outbound_routes.mark_letter(request, outbound_id, action, page.user))
    if isinstance(got, Refusal):
        raise PageError(got.status, got.message)
    return see_other(request, f"/mailroom?done=letter_{action}")
