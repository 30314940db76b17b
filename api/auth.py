"""Bearer-token authentication for the API (tokens are stored hashed; see casestore.users).

Checking a token is a pure read; its time of use is buffered (``casestore.token_use``) and
written after the response, at most every ``CASEWORK_AUTH__LAST_USED_FLUSH_S`` seconds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.wiring import Runtime
from casestore import users
from casestore.access import Principal, principal_of
from casestore.token_use import LastUseBuffer

__all__ = ["Principal", "authenticate_request", "authenticate_token", "bearer", "check_role", "current_user",
           "get_runtime", "last_use_buffer", "require_roles"]

bearer = HTTPBearer(auto_error=False, description="a token from `casework token create NAME`")

_PROBLEMS = {
    "unknown": "invalid token: ask an administrator for one (casework token create NAME)",
    "revoked": "this token was revoked: ask an administrator for a new one (casework token create NAME)",
    "disabled": "this token's user is disabled: an administrator can enable it (casework user enable NAME)",
}


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def authenticate_token(rt: Runtime, token: str) -> Principal | None:
    """The principal a live bearer token belongs to, or None (unknown, revoked, expired, user
    disabled).  A pure read (the body-limit middleware calls it before a body is read)."""
    with rt.statement_sessions() as session:
        check = users.check_token(session, token=token)
        return principal_of(check.user) if check.user is not None else None


def last_use_buffer(request: Request) -> LastUseBuffer:
    """The app's buffer of token last-use times (``app.state.last_use``, made by create_app)."""
    buffer: LastUseBuffer = request.app.state.last_use
    return buffer


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def current_user(
    request: Request,
    background: BackgroundTasks,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return authenticate_request(request, background, credentials)


def authenticate_request(request: Request, background: BackgroundTasks,
                         credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """``current_user``'s check, callable from a route's own worker thread (get-next does its token
    check and its claim in one threadpool trip): the bearer token in the store, else a workbench
    session with its CSRF header; 401 (403 without the CSRF header) otherwise."""
    if credentials is None:  # a browser signed in to the workbench (session cookie + CSRF header)
        from api.web.session_auth import api_session_principal

        if (signed_in := api_session_principal(request)) is not None:
            return signed_in
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token from casework token create>'")
    rt = get_runtime(request)
    with rt.statement_sessions() as session:  # one statement: no write lock, no transaction round trips
        check = users.check_token(session, token=credentials.credentials)
        if check.user is None or check.token_id is None:
            if check.problem == "expired" and check.expires_at is not None:
                raise _unauthorized(f"this token expired at {check.expires_at.isoformat(timespec='seconds')}: "
                                    "ask an administrator for a new one (casework token create NAME --expires-in 90d)")
            raise _unauthorized(_PROBLEMS.get(check.problem or "unknown", _PROBLEMS["unknown"]))
        principal = principal_of(check.user)
    buffer = last_use_buffer(request)
    buffer.note(check.token_id)
    if buffer.due():
        background.add_task(buffer.flush, rt.engine)  # after the response, in its own short transaction
    return principal


def check_role(user: Principal, roles: tuple[str, ...]) -> Principal:
    """403 unless ``user``'s role is one of ``roles``."""
    if user.role not in roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"role {user.role} may not do this; needs one of: {', '.join(roles)}")
    return user


def require_roles(*roles: str) -> object:
    # async: a pure check, run on the event loop (a sync dependency costs a threadpool round trip)
    async def check(user: Annotated[Principal, Depends(current_user)]) -> Principal:
        return check_role(user, roles)

    return Depends(check)
