"""Administration over REST: users (``/api/v1/admin/users``) and tokens (``/api/v1/admin/tokens``).

Admin role only.  The same services back `casework user ...` and `casework token ...`.
Include with ``app.include_router(admin_routes.router)``.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from api.admin_schemas import TokenCreated, TokenOut, UserOut
from api.auth import Principal, get_runtime, require_roles
from casestore import users
from casestore.signin.passwords import set_password

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
Admin = Annotated[Principal, require_roles("admin")]


class NewUser(BaseModel):
    name: str = Field(max_length=100)
    role: str = Field(description="agent, supervisor, admin or integration")
    teams: list[str] = Field(default_factory=list)


class UserChange(BaseModel):
    role: str | None = Field(default=None, description="the new role; null: unchanged")
    teams: list[str] | None = Field(default=None, description="the new teams (all of them); null: unchanged")


class NewToken(BaseModel):
    user: str = Field(description="the user the token is for")
    expires_in: str | None = Field(default=None, description="lifetime, e.g. 90d, 12h, 30m, 2w; none: never")
    label: str | None = Field(default=None, max_length=200, description="what the token is for")


class NewPassword(BaseModel):
    password: str = Field(max_length=1024, description="the workbench password; at least 10 characters")


class Revoked(BaseModel):
    user: str
    revoked: int = Field(description="how many live tokens were revoked")


@router.get("/users", response_model=list[UserOut])
def list_users(request: Request, admin: Admin) -> list[UserOut]:
    with get_runtime(request).read_sessions() as session:
        return [UserOut.of(u) for u in users.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def add_user(request: Request, body: NewUser, admin: Admin) -> UserOut:
    with get_runtime(request).sessions() as session, session.begin():
        return UserOut.of(users.add_user(session, name=body.name, role=body.role, teams=body.teams))


@router.patch("/users/{name}", response_model=UserOut)
def change_user(request: Request, name: str, body: UserChange, admin: Admin) -> UserOut:
    """Change a user's role and/or teams; it holds from their next request."""
    if body.role is not None and name.strip() == admin.name and body.role.strip().lower() != admin.role:
        raise HTTPException(409, "you may not change your own role: another admin must")
    with get_runtime(request).sessions() as session, session.begin():
        user = users.change_user(session, name=name, role=body.role, teams=body.teams)
        log.info("user %s changed by %s", user.name, admin.name)
        return UserOut.of(user)


def _set_disabled(request: Request, name: str, admin: Principal, disabled: bool) -> UserOut:
    if disabled and name.strip() == admin.name:
        raise HTTPException(409, "you may not disable yourself: another admin must (or `casework user disable`)")
    with get_runtime(request).sessions() as session, session.begin():
        user = users.set_disabled(session, name=name, disabled=disabled)
        log.info("user %s %s by %s", user.name, "disabled" if disabled else "enabled", admin.name)
        return UserOut.of(user)


@router.post("/users/{name}/disable", response_model=UserOut)
def disable_user(request: Request, name: str, admin: Admin) -> UserOut:
    """Every token of the user is refused (401) until it is enabled again."""
    return _set_disabled(request, name, admin, True)


@router.post("/users/{name}/enable", response_model=UserOut)
def enable_user(request: Request, name: str, admin: Admin) -> UserOut:
    return _set_disabled(request, name, admin, False)


@router.post("/users/{name}/password", response_model=UserOut)
def set_user_password(request: Request, name: str, body: NewPassword, admin: Admin) -> UserOut:
    """Give the user a new workbench password (argon2-hashed); their web sessions end."""
    with get_runtime(request).sessions() as session, session.begin():
        user = set_password(session, name=name, password=body.password)
        log.info("password of %s set by %s", user.name, admin.name)
        return UserOut.of(user)


@router.post("/users/{name}/revoke-tokens", response_model=Revoked)
def revoke_user_tokens(request: Request, name: str, admin: Admin) -> Revoked:
    with get_runtime(request).sessions() as session, session.begin():
        return Revoked(user=name, revoked=users.revoke_tokens(session, name=name))


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(request: Request, admin: Admin,
                user: Annotated[str | None, Query(description="only this user's tokens")] = None) -> list[TokenOut]:
    with get_runtime(request).read_sessions() as session:
        return [TokenOut.of(t) for t in users.list_tokens(session, name=user)]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(request: Request, body: NewToken, admin: Admin) -> TokenCreated:
    """A new token; the response is the only time it is shown."""
    with get_runtime(request).sessions() as session, session.begin():
        lifetime = users.parse_duration(body.expires_in) if body.expires_in else None
        new = users.issue_token(session, name=body.user, expires_in=lifetime, label=body.label)
        return TokenCreated(**TokenOut.of(new.row).model_dump(), token=new.token)


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut)
def revoke_token(request: Request, token_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="the token id")],
                 admin: Admin) -> TokenOut:
    """Revoke one token (revoking it again is harmless)."""
    with get_runtime(request).sessions() as session, session.begin():
        return TokenOut.of(users.revoke_token(session, token_id=token_id))
