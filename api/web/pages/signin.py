"""Signing in and out: ``GET/POST /login``, ``POST /logout``.

The sign-in form is protected against login CSRF by a double-submit token (a short-lived cookie
``cw_login`` and the same value in the form).  Failed sign-ins are counted per user name and per
client address in the store (``casestore.signin.throttle``); past the limit the page answers 429
with how long to wait.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from api.web.session_auth import (
    COOKIE,
    Page,
    clear_session_cookie,
    current_session,
    idle_timeout,
    runtime_of,
    safe_next,
    set_session_cookie,
)
from api.web.templating import render
from casestore.models import User
from casestore.signin import throttle
from casestore.signin.passwords import check_password
from casestore.signin.sessions import end_session, start_session

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "cw_login"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_form(request: Request, *, next_url: str, message: str = "", name: str = "", status_code: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    oidc = runtime_of(request).settings.web.oidc
    response = render(request, "login.html", {"next": next_url, "login_token": token, "message": message,
                                              "name": name, "signed_out": request.query_params.get("signed_out"),
                                              "oidc_label": oidc.label if oidc.enabled else ""},
                      status_code=status_code, headers=headers)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/login")
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if current_session(request) is not None:
        return Response(status_code=303, headers={"Location": safe_next(next)})
    return login_form(request, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    login_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    target = safe_next(next)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), login_token.encode()):
        return login_form(request, next_url=target, name=name, status_code=403,
                     message="The sign-in form had expired. Please sign in again.")
    rt, client = runtime_of(request), _client(request)
    with rt.read_sessions() as session:
        try:
            throttle.check(session, user_name=name, client=client)
        except throttle.TooManySignIns as exc:
            return login_form(request, next_url=target, name=name, status_code=429, message=str(exc),
                         headers={"Retry-After": str(exc.retry_after_s)})
        user = check_password(session, name=name, password=password)
        user_id = user.id if user is not None else None
    with rt.sessions() as session, session.begin():
        if user_id is None:
            throttle.record_failure(session, user_name=name, client=client)
        else:
            throttle.clear(session, user_name=name)
            token, _csrf = start_session(session, user=session.get_one(User, user_id), client=client,
                                         idle=idle_timeout(request))
    if user_id is None:
        return login_form(request, next_url=target, name=name, status_code=401,
                     message="That user name and password do not match. Check them and try again.")
    response = Response(status_code=303, headers={"Location": target})
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, page: Page) -> Response:
    token = request.cookies.get(COOKIE, "")
    with runtime_of(request).sessions() as session, session.begin():
        end_session(session, token=token)
    log.info("user %s signed out", page.user.name)
    response = Response(status_code=303, headers={"Location": "/login?signed_out=1"})
    clear_session_cookie(request, response)
    return response
