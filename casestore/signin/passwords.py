"""Passwords for the workbench, hashed with argon2id (argon2-cffi's defaults, RFC 9106 low-memory).

``check_password`` costs one argon2 verification whether or not the user exists or has a
password, so its timing does not tell which user names exist.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casestore.errors import InvalidInput
from casestore.models import User, utcnow
from casestore.signin.models import UserPassword, WebSession
from casestore.users import get_user

log = logging.getLogger(__name__)

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 hashes anything; a bound keeps a sign-in request cheap
SIGN_IN_ROLES = ("agent", "supervisor", "admin")  # integration accounts use bearer tokens only


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash("not a password anyone has")


def check_strength(password: str, *, user_name: str) -> None:
    """InvalidInput unless the password is long enough and is not the user name."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"the password has {len(password)} characters; use at least {MIN_LENGTH} "
                           "(a few unrelated words are easy to type and hard to guess)")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"the password is longer than {MAX_LENGTH} characters; use a shorter one")
    if password.strip().lower() == user_name.strip().lower():
        raise InvalidInput("the password must not be the user name")


def set_password(session: Session, *, name: str, password: str) -> User:
    """Give the user ``name`` this password (replacing any old one) and end the user's web
    sessions, so a changed password signs out every browser.  NotFound for an unknown user,
    InvalidInput for an integration account or a weak password.  Flushes, never commits."""
    user = get_user(session, name=name)
    if user.role not in SIGN_IN_ROLES:
        raise InvalidInput(f"user {user.name!r} is an {user.role} account: it uses bearer tokens "
                           "(casework token create NAME), not a password")
    check_strength(password, user_name=user.name)
    digest = hasher().hash(password)
    row = session.get(UserPassword, user.id)
    if row is None:
        session.add(UserPassword(user_id=user.id, password_hash=digest, changed_at=utcnow()))
    else:
        row.password_hash, row.changed_at = digest, utcnow()
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()
    log.info("password set for user %s; their web sessions ended", user.name)
    return user


def check_password(session: Session, *, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs, they may sign in and are not disabled; else None.
    Reads only (a sign-in checks the password outside any write transaction)."""
    row = session.execute(
        select(User, UserPassword).join(UserPassword, UserPassword.user_id == User.id)
        .where(User.name == name.strip())
    ).first() if name.strip() and len(password) <= MAX_LENGTH else None
    if row is None:
        _verify(_dummy_hash(), password[:MAX_LENGTH])  # the same work as for a real user
        return None
    user, stored = row
    if not _verify(stored.password_hash, password):
        return None
    if user.disabled or user.role not in SIGN_IN_ROLES:
        return None
    return user


def accounts(session: Session) -> list[tuple[User, bool]]:
    """Every user, by name, and whether they have a workbench password."""
    rows = session.execute(select(User, UserPassword.user_id).outerjoin(UserPassword, UserPassword.user_id == User.id)
                           .order_by(User.name))
    return [(user, has is not None) for user, has in rows]


def _verify(digest: str, password: str) -> bool:
    try:
        return hasher().verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False
