"""Signing in through an OpenID Connect provider: ``GET /login/oidc`` and ``/login/oidc/callback``.

The authorization-code flow with PKCE (S256) and a nonce, done by authlib's Starlette client:
it reads the provider's discovery document, keeps the state, nonce and code verifier between the
two redirects in a signed, short-lived cookie (``cw_oidc``, path ``/login``), exchanges the code
and verifies the ID token (signature against the provider's JWKS, issuer, audience, expiry,
nonce).  The verified claim ``CASEWORK_WEB__OIDC__USER_CLAIM`` names the casework user
(``casestore.signin.federated``); the workbench session that follows is the same server-side
session a password sign-in makes, so idle timeout, CSRF and sign-out behave the same.

Not done: provider-initiated (back-channel) logout and signing out at the provider too; users
are not created from the provider's claims (an administrator adds them, with their teams).
"""

from __future__ import annotations

import logging
import secrets
import warnings
from typing import Any

from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response

from api.settings import OidcSettings
from api.web.pages.signin import login_form
from api.web.session_auth import idle_timeout, runtime_of, safe_next, set_session_cookie
from casestore.signin.federated import FederatedRefusal, user_for_claim
from casestore.signin.sessions import start_session

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
STATE_COOKIE = "cw_oidc"
STATE_MAX_AGE_S = 600  # the person has ten minutes at the provider
_NEXT_KEY = "casework_next"


def install_oidc(app: FastAPI, settings: OidcSettings) -> None:
    """Add the OpenID Connect sign-in when it is configured (nothing otherwise)."""
    if not settings.enabled:
        app.state.oidc = None
        return
    with warnings.catch_warnings():  # authlib 1.7+ warns that it falls back to httpx (not httpx2) on import
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.starlette_client import OAuth  # only when configured: it loads httpx's client
    oauth = OAuth()
    oauth.register(
        "provider",
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value() or None,
        server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": settings.scopes, "code_challenge_method": "S256"},
    )
    app.state.oidc = oauth
    secret = settings.state_secret.get_secret_value() or secrets.token_urlsafe(32)
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie=STATE_COOKIE, max_age=STATE_MAX_AGE_S,
                       path="/login", same_site="lax", https_only=False)
    app.include_router(router)


def _settings(request: Request) -> OidcSettings:
    return runtime_of(request).settings.web.oidc


def _client(request: Request) -> Any:
    return request.app.state.oidc.provider


def _refused(request: Request, message: str, status_code: int) -> Response:
    """The sign-in page again, with why (the password form stays usable)."""
    request.session.clear()
    return login_form(request, next_url="/", message=message, status_code=status_code)


@router.get("/login/oidc")
async def start(request: Request, next: str = "/") -> Response:
    """Off to the provider; it sends the person back to ``/login/oidc/callback``."""
    settings = _settings(request)
    redirect_uri = settings.redirect_url or str(request.url_for("oidc_callback"))
    request.session.clear()
    request.session[_NEXT_KEY] = safe_next(next)
    try:
        response: Response = await _client(request).authorize_redirect(request, redirect_uri)
    except Exception as exc:  # the provider's discovery document could not be read
        log.warning("OpenID Connect provider %s unreachable: %s", settings.issuer, exc)
        return _refused(request, "The identity provider cannot be reached just now. Try again in a minute, or "
                                 "sign in with your casework password.", 503)
    return response


@router.get("/login/oidc/callback", name="oidc_callback")
async def callback(request: Request) -> Response:
    """Back from the provider: verify, find the casework user, start a workbench session."""
    settings = _settings(request)
    if request.query_params.get("error"):
        reason = request.query_params.get("error_description") or request.query_params["error"]
        return _refused(request, f"The identity provider did not sign you in: {reason[:200]}", 401)
    try:
        token = await _client(request).authorize_access_token(request)
    except OAuthError as exc:
        log.warning("OpenID Connect sign-in refused: %s %s", exc.error, exc.description)
        return _refused(request, "The sign-in with the identity provider could not be completed (it had expired or "
                                 "was started elsewhere). Please sign in again.", 400)
    except Exception as exc:  # the token endpoint or JWKS could not be read, or the ID token is invalid
        log.warning("OpenID Connect sign-in failed: %s: %s", type(exc).__name__, exc)
        return _refused(request, "The identity provider's answer could not be verified. Please sign in again; "
                                 "if it keeps failing, tell an administrator.", 502)
    claims = token.get("userinfo") or {}
    target = safe_next(request.session.get(_NEXT_KEY))
    client = request.client.host if request.client else "unknown"
    rt = runtime_of(request)

    def sign_in() -> str:
        with rt.sessions() as session, session.begin():
            user = user_for_claim(session, claim=settings.user_claim, value=claims.get(settings.user_claim))
            cookie, _csrf = start_session(session, user=user, client=client, idle=idle_timeout(request))
            log.info("user %s signed in through OpenID Connect (subject %s)", user.name, claims.get("sub"))
            return cookie

    try:
        cookie = await run_in_threadpool(sign_in)
    except FederatedRefusal as exc:
        log.warning("OpenID Connect sign-in of subject %s refused: %s", claims.get("sub"), exc)
        return _refused(request, f"You are signed in at the identity provider, but {exc}.", 403)
    request.session.clear()
    response = Response(status_code=303, headers={"Location": target})
    set_session_cookie(request, response, cookie)
    return response
