"""Bearer-token authentication for the API (tokens are stored hashed; see casestore.users)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.wiring import Runtime
from casestore import users

bearer = HTTPBearer(auto_error=False, description="a token from `casework token create NAME`")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    teams: tuple[str, ...]
    disabled: bool = False  # authenticate() never returns a disabled user; kept for can_see_case


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def authenticate_token(rt: Runtime, token: str) -> Principal | None:
    """The principal a live bearer token belongs to, or None (unknown, revoked, user disabled)."""
    with rt.sessions() as session, session.begin():
        user = users.authenticate(session, token=token)
        if user is None:
            return None
        return Principal(name=user.name, role=user.role, teams=tuple(user.teams or ()))


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    checked = request.scope.get("state", {}).get("principal")  # api.body_limits checked it before the body
    if isinstance(checked, Principal):
        return checked
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing bearer token: send 'Authorization: Bearer <token from casework token create>'",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = authenticate_token(get_runtime(request), credentials.credentials)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid, revoked or disabled token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_roles(*roles: str) -> object:
    def check(user: Annotated[Principal, Depends(current_user)]) -> Principal:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {user.role} may not do this; needs one of: {', '.join(roles)}")
        return user

    return Depends(check)
