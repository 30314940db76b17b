"""``/admin/tokens``: API bearer tokens (administrators only): every token with its user, label,
expiry, last use and state; create one (shown once, on the page that answers the form, never
stored or put in a URL); revoke one.

The REST routes' own functions (``api.admin_routes``) do the work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from api import admin_routes
from api.admin_schemas import TokenCreated
from api.web.notices import notice_for
from api.web.pages.admin import admin_nav, require_admin
from api.web.refusals import Refusal, attempt, body
from api.web.session_auth import Page, PageContext
from api.web.templating import render
from casestore.models import utcnow

router = APIRouter(include_in_schema=False)


def _tokens_page(request: Request, page: PageContext, *, notice: str = "", problem: Refusal | None = None,
                 created: TokenCreated | None = None) -> Response:
    tokens = admin_routes.list_tokens(request, page.user)
    people = [u.name for u in admin_routes.list_users(request, page.user) if not u.disabled]
    response = render(request, "admin_tokens.html", {
        "tokens": list(reversed(tokens)), "people": people, "notice": notice, "created": created,
        "problem": problem.message if problem else "", "now": utcnow(), **admin_nav("tokens"),
    }, page=page, status_code=problem.status if problem else 201 if created else 200)
    if created is not None:
        response.headers["Cache-Control"] = "no-store"  # the one page that shows the token
    return response


@router.get("/admin/tokens")
def tokens_page(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    require_admin(page)
    return _tokens_page(request, page, notice=notice_for(done))


@router.post("/admin/tokens")
def create_token(request: Request, page: Page, user: Annotated[str, Form(max_length=100)] = "",
                 expires_in: Annotated[str, Form(max_length=20)] = "",
                 label: Annotated[str, Form(max_length=200)] = "") -> Response:
    require_admin(page)
    got = attempt(lambda: admin_routes.create_token(request, body(
        admin_routes.NewToken, user=user, expires_in=expires_in.strip() or None, label=label.strip() or None),
        page.user))
    if isinstance(got, Refusal):
        return _tokens_page(request, page, problem=got)
    return _tokens_page(request, page, created=got)


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: int, page: Page) -> Response:
    require_admin(page)
    got = attempt(lambda: admin_routes.revoke_token(request, token_id, page.user))
    if isinstance(got, Refusal):
        return _tokens_page(request, page, problem=got)
    return Response(status_code=303, headers={"Location": "/admin/tokens?done=token_revoked"})
