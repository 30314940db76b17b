"""Who is signed in to the workbench: the session cookie, the CSRF check, and the page dependency.

- The cookie ``cw_session`` holds a random id (the store keeps its sha256, see
  ``casestore.signin.sessions``): HttpOnly, SameSite=Lax, Secure when the request came over https.
- Every unsafe request (POST, PUT, PATCH, DELETE) made with the session cookie must carry the
  session's CSRF token: the ``X-CSRF-Token`` header (htmx sends it from ``hx-headers`` on
  <body>) or, for a plain HTML form, the hidden field ``csrf_token``.  Bearer-token API calls
  need none: a browser never adds an Authorization header by itself.
- Pages need a session: ``PageUser`` redirects to ``/login?next=...`` without one.
- ``api_session_principal`` lets the REST API accept a session as well as a bearer token
  (``api.auth.current_user`` asks it when no bearer token was sent).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response

from api.auth import Principal
from api.wiring import Runtime
from casestore.signin.passwords import SIGN_IN_ROLES
from casestore.signin.sessions import ActiveSession, find_session, touch

log = logging.getLogger(__name__)

COOKIE = "cw_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_NOT_LOOKED_UP = object()


class SignInRequired(Exception):
    """No live session: the page handler answers with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PageError(Exception):
    """A page that cannot be shown: rendered as an HTML error page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PageContext:
    """What every page's template needs about the viewer."""

    user: Principal
    csrf_token: str


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def idle_timeout(request: Request) -> timedelta:
    return timedelta(minutes=runtime_of(request).settings.web.session_idle_minutes)


def current_session(request: Request) -> ActiveSession | None:
    """The live session behind the request's cookie (looked up once per request), or None."""
    cached = getattr(request.state, "web_session", _NOT_LOOKED_UP)
    if cached is not _NOT_LOOKED_UP:
        return cached if isinstance(cached, ActiveSession) else None
    active: ActiveSession | None = None
    token = request.cookies.get(COOKIE)
    if token:
        rt = runtime_of(request)
        with rt.read_sessions() as session:
            active = find_session(session, token=token, idle=idle_timeout(request))
        if active is not None and active.touch_due:
            with rt.sessions() as session, session.begin():
                touch(session, session_id=active.session_id)
    request.state.web_session = active
    return active


def principal_of(active: ActiveSession) -> Principal:
    return Principal(name=active.user_name, role=active.role, teams=active.teams)


def csrf_ok(active: ActiveSession, sent: str | None) -> bool:
    return bool(sent) and secrets.compare_digest(str(sent).encode(), active.csrf_token.encode())


def api_session_principal(request: Request) -> Principal | None:
    """For the REST API: the session's user, or None without a live session.  An unsafe method
    needs the CSRF token in the ``X-CSRF-Token`` header (403 without it)."""
    active = current_session(request)
    if active is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_ok(active, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, f"a request with the session cookie needs the {CSRF_HEADER} header with the "
                                 "page's CSRF token (or use a bearer token)")
    return principal_of(active)


def _next_url(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


async def page_context(request: Request) -> PageContext:
    """The signed-in person for a page (SignInRequired without a session; 403 for integration
    accounts; 403 for an unsafe request without the session's CSRF token)."""
    active = current_session(request)
    if active is None:
        raise SignInRequired(_next_url(request) if request.method in SAFE_METHODS else "/")
    if active.role not in SIGN_IN_ROLES:
        raise PageError(403, f"role {active.role} does not use the workbench")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not csrf_ok(active, sent):
            log.warning("refused %s %s by %s: missing or wrong CSRF token", request.method, request.url.path,
                        active.user_name)
            raise PageError(403, "This form did not carry its security token (it may have come from another "
                                 "site, or the page is old). Reload the page and try again.")
    return PageContext(user=principal_of(active), csrf_token=active.csrf_token)


Page = Annotated[PageContext, Depends(page_context)]


def sign_in_redirect(request: Request, next_url: str) -> Response:
    target = "/login" + (f"?next={quote(next_url, safe='/')}" if next_url and next_url != "/" else "")
    if request.headers.get("HX-Request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return Response(status_code=303, headers={"Location": target})


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        path="/")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or a URL)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def session_may_post(rt: Runtime, cookie: str, csrf: str | None) -> tuple[int, str] | None:
    """For ``api.body_limits``, before a body is read: None if this cookie is a live session and
    the CSRF header matches it, else the refusal (status, message) the route would give too."""
    with rt.read_sessions() as session:
        active = find_session(session, token=cookie, idle=timedelta(minutes=rt.settings.web.session_idle_minutes))
    if active is None:
        return 401, "the session has ended: sign in again, or send a bearer token"
    if not csrf_ok(active, csrf):
        return 403, (f"a request with the session cookie needs the {CSRF_HEADER} header with the page's CSRF token "
                     "(or use a bearer token)")
    return None
