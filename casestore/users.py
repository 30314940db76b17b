"""Users, their roles and teams, bearer tokens (stored hashed), and who may see which case."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import ROLES, ApiToken, Case, Item, User, utcnow
from casestore.validation import required

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cw_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
SEES_ALL_CASES = frozenset({"admin", "supervisor"})


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def get_user(session: Session, *, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name.strip()))
    if user is None:
        raise NotFound(f"no user named {name.strip()!r}; add one with `casework user add NAME --role ROLE`")
    return user


def add_user(session: Session, *, name: str, role: str, teams: Sequence[str] = ()) -> User:
    """Create a user; InvalidInput for an unknown role, Conflict if the name is taken."""
    clean_name = required("name", name, max_len=100)
    clean_role = (role or "").strip().lower()
    if clean_role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    if isinstance(teams, str):
        raise InvalidInput("teams must be a list of team names, not one string")
    clean_teams = list(dict.fromkeys(required("team", t, max_len=100) for t in teams))
    if session.scalar(select(User.id).where(User.name == clean_name)) is not None:
        raise Conflict(f"a user named {clean_name!r} exists already; choose another name")
    user = User(name=clean_name, role=clean_role, teams=clean_teams, created_at=utcnow(), disabled=False)
    session.add(user)
    session.flush()
    log.info("user %s added with role %s", clean_name, clean_role)
    return user


def create_token(session: Session, *, name: str) -> str:
    """A new bearer token for the user ``name``; only its hash is stored, so show it once."""
    user = get_user(session, name=name)
    if user.disabled:
        raise InvalidInput(f"user {user.name!r} is disabled; enable it before creating a token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), created_at=utcnow(), revoked=False))
    session.flush()
    log.info("token created for user %s", user.name)
    return token


def revoke_tokens(session: Session, *, name: str) -> int:
    """Revoke every token of the user ``name``; returns how many were live."""
    user = get_user(session, name=name)
    result = session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(False)).values(revoked=True)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    log.info("revoked %d token(s) of user %s", count, user.name)
    return count


def authenticate(session: Session, *, token: str) -> User | None:
    """The user a live token belongs to, or None (unknown, revoked, or user disabled).

    Looking up the sha256 of the token, rather than comparing tokens, leaks nothing useful
    through timing.  ``last_used_at`` is written at most once a minute per token.
    """
    if not token:
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if found is None or found.revoked or found.user.disabled:
        return None
    now = utcnow()
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
        found.last_used_at = now
        session.flush()
    return found.user


def items_hidden_from(session: Session, *, role: str, teams: Sequence[str], disabled: bool,
                      item_ids: Sequence[str]) -> set[str]:
    """Of these items, those the store says this viewer may not see now (its case's team and
    restriction as they are, not as a search index last recorded them).  Items in no case (the
    triage queue) are visible to everyone; ids the store does not hold are not judged here."""
    if not item_ids:
        return set()
    rows = session.execute(
        select(Item.item_id, Case.id, Case.team, Case.restricted)
        .outerjoin(Case, Item.case_id == Case.id).where(Item.item_id.in_(list(item_ids)))
    ).all()
    if disabled:
        return {str(r[0]) for r in rows}
    if role in SEES_ALL_CASES:
        return set()
    mine = set(teams)
    return {str(item_id) for item_id, case_id, team, restricted in rows
            if case_id is not None and (team not in mine if team is not None else bool(restricted))}


def can_see_case(user: User, case: Case) -> bool:
    """Admins and supervisors see every case; others see cases of their teams, and cases of no
    team that are not restricted."""
    if user.disabled:
        return False
    if user.role in SEES_ALL_CASES:
        return True
    if case.team is None:
        return not case.restricted
    return case.team in (user.teams or [])
