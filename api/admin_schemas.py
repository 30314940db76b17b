"""Read models of users and tokens, shared by the admin REST routes and `casework user/token`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from casestore.models import ApiToken, User


class UserOut(BaseModel):
    name: str
    role: str
    teams: list[str]
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(name=user.name, role=user.role, teams=list(user.teams or []), disabled=bool(user.disabled),
                   created_at=user.created_at)


class TokenOut(BaseModel):
    """A token's record; the token itself is never stored, so never shown."""

    id: int
    user: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None = Field(description="None: never expires")
    last_used_at: datetime | None = Field(description="written in batches: may lag by a minute or so")
    revoked: bool
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(id=token.id, user=token.user.name, label=token.label, created_at=token.created_at,
                   expires_at=token.expires_at, last_used_at=token.last_used_at, revoked=bool(token.revoked),
                   revoked_at=token.revoked_at)


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token: shown this once, only its hash is stored")
