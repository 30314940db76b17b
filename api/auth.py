"""Bearer-token authentication for the API (tokens are stored hashed; see casestore.users)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.wiring import Runtime
from casestore import users

_bearer = HTTPBearer(auto_error=False, description="a token from `casework token create NAME`")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    teams: tuple[str, ...]
    disabled: bool = False  # authenticate() never returns a disabled user; kept for can_see_case


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:  # a browser signed in to the workbench (session cookie + CSRF header)
        from api.web.session_auth import api_session_principal

        if (signed_in := api_session_principal(request)) is not None:
            return signed_in
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing bearer token: send 'Authorization: Bearer <token from casework token create>'",
                            headers={"WWW-Authenticate": "Bearer"})
    rt = get_runtime(request)
    with rt.sessions() as session, session.begin():
        user = users.authenticate(session, token=credentials.credentials)
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid, revoked or disabled token",
                                headers={"WWW-Authenticate": "Bearer"})
        return Principal(name=user.name, role=user.role, teams=tuple(user.teams or ()))


def require_roles(*roles: str) -> object:
    def check(user: Annotated[Principal, Depends(current_user)]) -> Principal:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {user.role} may not do this; needs one of: {', '.join(roles)}")
        return user

    return Depends(check)
