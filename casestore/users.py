"""Users, their roles and teams, and their bearer tokens (stored hashed) with a lifecycle:
labels, expiry, revocation, last use; users can be disabled and enabled again.

Who may see which case is not decided here: see ``casestore.access``.

``check_token`` is a pure read (no write lock per request); when a token was last used is
recorded by ``casestore.token_use.LastUseBuffer`` in batches.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session

from casestore.db import DriverQuery
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import ROLES, ApiToken, User, utcnow
from casestore.validation import optional, required

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cw_"
LABEL_MAX = 200
MAX_EXPIRY = timedelta(days=3650)
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

Problem = Literal["unknown", "revoked", "expired", "disabled"]


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- users ------------------------------------------------------------------------------------


def get_user(session: Session, *, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name.strip()))
    if user is None:
        raise NotFound(f"no user named {name.strip()!r}; add one with `casework user add NAME --role ROLE`")
    return user


def _role(role: str) -> str:
    clean = (role or "").strip().lower()
    if clean not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    return clean


def _teams(teams: Sequence[str]) -> list[str]:
    if isinstance(teams, str):
        raise InvalidInput("teams must be a list of team names, not one string")
    return list(dict.fromkeys(required("team", t, max_len=100) for t in teams))


def add_user(session: Session, *, name: str, role: str, teams: Sequence[str] = ()) -> User:
    """Create a user; InvalidInput for an unknown role, Conflict if the name is taken."""
    clean_name = required("name", name, max_len=100)
    clean_role = _role(role)
    clean_teams = _teams(teams)
    if session.scalar(select(User.id).where(User.name == clean_name)) is not None:
        raise Conflict(f"a user named {clean_name!r} exists already; choose another name")
    user = User(name=clean_name, role=clean_role, teams=clean_teams, created_at=utcnow(), disabled=False)
    session.add(user)
    session.flush()
    log.info("user %s added with role %s", clean_name, clean_role)
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def change_user(session: Session, *, name: str, role: str | None = None,
                teams: Sequence[str] | None = None) -> User:
    """Give the user ``name`` another role and/or other teams (None: leave as is).  Tokens and
    workbench sessions read the user on every request, so the change holds from the next one.
    InvalidInput for an unknown role or a bad team name, NotFound for an unknown user."""
    user = get_user(session, name=name)
    if role is not None:
        user.role = _role(role)
    if teams is not None:
        user.teams = _teams(teams)
    session.flush()
    log.info("user %s now %s in %s", user.name, user.role, ", ".join(user.teams or []) or "no team")
    return user


def set_disabled(session: Session, *, name: str, disabled: bool) -> User:
    """Disable (or enable again) the user ``name``.  A disabled user's tokens stop working at
    once and work again when the user is enabled, unless revoked or expired meanwhile."""
    user = get_user(session, name=name)
    user.disabled = disabled
    session.flush()
    log.info("user %s %s", user.name, "disabled" if disabled else "enabled")
    return user


# -- tokens -----------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` -> a timedelta; InvalidInput for anything else."""
    m = _DURATION.match(text or "")
    if not m:
        raise InvalidInput(f"duration {text!r} is not a number with a unit: write e.g. 90d, 12h, 30m or 2w")
    value = timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    if value <= timedelta(0) or value > MAX_EXPIRY:
        raise InvalidInput(f"duration {text!r} must be more than 0 and at most {MAX_EXPIRY.days} days")
    return value


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once: only its hash is stored
    row: ApiToken


def issue_token(session: Session, *, name: str, expires_in: timedelta | None = None,
                label: str | None = None) -> NewToken:
    """A new bearer token for the user ``name``, expiring after ``expires_in`` (None: never),
    with an optional ``label`` saying what it is for.  Only its hash is stored: show it once."""
    user = get_user(session, name=name)
    if user.disabled:
        raise InvalidInput(f"user {user.name!r} is disabled; enable it before creating a token")
    if expires_in is not None and (expires_in <= timedelta(0) or expires_in > MAX_EXPIRY):
        raise InvalidInput(f"a token's lifetime must be more than 0 and at most {MAX_EXPIRY.days} days")
    clean_label = optional("label", label, max_len=LABEL_MAX)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), created_at=now, revoked=False,
                   label=clean_label, expires_at=now + expires_in if expires_in is not None else None)
    session.add(row)
    session.flush()
    log.info("token %d created for user %s", row.id, user.name)
    return NewToken(token=token, row=row)


def create_token(session: Session, *, name: str) -> str:
    """A new bearer token (no expiry, no label) for the user ``name``."""
    return issue_token(session, name=name).token


def list_tokens(session: Session, *, name: str | None = None) -> list[ApiToken]:
    """Every token (of the user ``name``), oldest first.  Tokens themselves are never stored."""
    query = select(ApiToken).order_by(ApiToken.id)
    if name is not None:
        query = query.where(ApiToken.user_id == get_user(session, name=name).id)
    return list(session.scalars(query))


def revoke_token(session: Session, *, token_id: int) -> ApiToken:
    """Revoke one token by its id (as ``list_tokens`` shows it); revoking twice is harmless."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id}; list them with `casework token list`")
    if not row.revoked:
        row.revoked, row.revoked_at = True, utcnow()
        session.flush()
        log.info("token %d of user %s revoked", row.id, row.user.name)
    return row


def revoke_tokens(session: Session, *, name: str) -> int:
    """Revoke every token of the user ``name``; returns how many were live."""
    user = get_user(session, name=name)
    result = session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(False))
        .values(revoked=True, revoked_at=utcnow())
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    log.info("revoked %d token(s) of user %s", count, user.name)
    return count


@dataclass(frozen=True)
class TokenCheck:
    """What a presented token is: its user and id when it works, else what is wrong with it."""

    user: User | None
    token_id: int | None
    problem: Problem | None
    expires_at: datetime | None = None


def check_token(session: Session, *, token: str, now: datetime | None = None) -> TokenCheck:
    """Look the token up by its sha256 (so timing leaks nothing useful).  A pure read."""
    if not token:
        return TokenCheck(None, None, "unknown")
    # columns, not ORM objects: this runs on every API request, and loading an ApiToken with its
    # User through the ORM cost more CPU than the query (the user comes back detached, for reading)
    return _judge(session.execute(_token_lookup(), {"token_hash": hash_token(token)}).first(), now)


def check_token_on(cursor: Any, dialect: Any, *, token: str, now: datetime | None = None) -> TokenCheck:
    """``check_token`` on a driver cursor (``casestore.db.driver_cursor``): the same query and rule,
    for get-next's path in front of the web framework, where a ``Session`` per call cost more CPU
    than the claim's own statements."""
    if not token:
        return TokenCheck(None, None, "unknown")
    return _judge(_TOKEN_LOOKUP.first(cursor, dialect, {"token_hash": hash_token(token)}), now)


def _judge(found: Any, now: datetime | None) -> TokenCheck:
    """What the token row ``found`` (None: no such token) says at ``now``."""
    if found is None:
        return TokenCheck(None, None, "unknown")
    problem: Problem | None = None
    if found.revoked:
        problem = "revoked"
    elif found.expires_at is not None and found.expires_at <= (now or utcnow()):
        problem = "expired"
    elif found.disabled:
        problem = "disabled"
    user = None
    if problem is None:
        user = User(id=found.user_id, name=found.name, role=found.role, teams=found.teams, disabled=found.disabled,
                    created_at=found.created_at)
    return TokenCheck(user, found.id, problem, found.expires_at)


@cache
def _token_lookup() -> Select[Any]:
    tokens, people = ApiToken.__table__.c, User.__table__.c
    return (select(tokens.id, tokens.revoked, tokens.expires_at, tokens.user_id, people.name, people.role,
                   people.teams, people.disabled, people.created_at)
            .join_from(ApiToken.__table__, User.__table__, tokens.user_id == people.id)
            .where(tokens.token_hash == bindparam("token_hash")))


_TOKEN_LOOKUP = DriverQuery(_token_lookup())


def authenticate(session: Session, *, token: str) -> User | None:
    """The user a live token belongs to, or None (unknown, revoked, expired, or user disabled)."""
    found = check_token(session, token=token).user
    return session.get(User, found.id) if found is not None else None  # the session's own (persistent) row
