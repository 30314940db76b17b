"""Server-side web sessions: the browser holds a random id; the store keeps its sha256, the user,
a CSRF token, and when the session was created and last seen.

A session ends when its user signs out, when it has been idle longer than the idle timeout, when
it is older than the absolute lifetime, when the user is disabled (checked on every request) or
when the user's password changes.  ``find_session`` is a pure read; ``touch`` records activity at
most once per ``TOUCH_EVERY`` so a page view does not write each time.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from casestore.models import User, utcnow
from casestore.signin.models import WebSession

log = logging.getLogger(__name__)

TOUCH_EVERY = timedelta(seconds=60)
MAX_LIFETIME = timedelta(hours=12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ActiveSession:
    session_id: int
    user_name: str
    role: str
    teams: tuple[str, ...]
    csrf_token: str
    touch_due: bool


def start_session(session: Session, *, user: User, client: str, idle: timedelta) -> tuple[str, str]:
    """A new session for ``user``: (the cookie value, the CSRF token).  Sessions idle longer than
    ``idle`` (anyone's) are deleted on the way."""
    now = utcnow()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.execute(delete(WebSession).where(
        or_(WebSession.last_seen_at < now - idle, WebSession.created_at < now - MAX_LIFETIME)))
    session.add(WebSession(token_hash=_hash(token), user_id=user.id, csrf_token=csrf, created_at=now,
                           last_seen_at=now, client=client[:64]))
    session.flush()
    log.info("user %s signed in from %s", user.name, client)
    return token, csrf


def find_session(session: Session, *, token: str, idle: timedelta, now: datetime | None = None) -> ActiveSession | None:
    """The live session behind this cookie value, or None (unknown, idle too long, too old, or its
    user disabled).  Reads only."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    row = session.execute(
        select(WebSession, User).join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _hash(token))
    ).first()
    if row is None:
        return None
    web, user = row
    if user.disabled or now - web.last_seen_at > idle or now - web.created_at > MAX_LIFETIME:
        return None
    return ActiveSession(session_id=web.id, user_name=user.name, role=user.role, teams=tuple(user.teams or ()),
                         csrf_token=web.csrf_token, touch_due=now - web.last_seen_at >= TOUCH_EVERY)


def touch(session: Session, *, session_id: int) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=utcnow()))
    session.flush()


def end_session(session: Session, *, token: str) -> bool:
    """Sign out: delete the session behind this cookie value; whether there was one."""
    result = session.execute(delete(WebSession).where(WebSession.token_hash == _hash(token)))
    session.flush()
    return bool(getattr(result, "rowcount", 0))


def end_user_sessions(session: Session, *, user_id: int) -> int:
    result = session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)
