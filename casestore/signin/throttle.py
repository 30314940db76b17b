"""Login throttling: too many failed sign-ins for one user name, or from one address, within a
window make further attempts wait.  Kept in the store, so every API process counts the same.

A successful sign-in clears the failures of that user name (not of the address).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from casestore.errors import CaseStoreError
from casestore.models import utcnow
from casestore.signin.models import LoginFailure

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)
MAX_PER_NAME = 5
MAX_PER_CLIENT = 20
KEEP = timedelta(days=1)


class TooManySignIns(CaseStoreError):
    """Too many failed sign-ins: wait, then try again (or ask an administrator to reset the password)."""

    http_status = 429
    retryable = True

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Limits:
    window: timedelta = WINDOW
    per_name: int = MAX_PER_NAME
    per_client: int = MAX_PER_CLIENT


def _key(name: str) -> str:
    return name.strip().lower()[:100]


def _wait(session: Session, column: object, value: str, limit: int, since: datetime, now: datetime) -> int:
    """Seconds until fewer than ``limit`` failures lie in the window, or 0 when below it now."""
    times = list(session.scalars(
        select(LoginFailure.at).where(column == value, LoginFailure.at >= since)  # type: ignore[arg-type]
        .order_by(LoginFailure.at.desc()).limit(limit)
    ))
    if len(times) < limit:
        return 0
    until = times[-1] + (now - since)  # the oldest of the last ``limit`` leaves the window then
    return max(1, int((until - now).total_seconds()) + 1)


def check(session: Session, *, user_name: str, client: str, limits: Limits = Limits(),
          now: datetime | None = None) -> None:
    """TooManySignIns (with ``retry_after_s``) when this name or this address has failed too often."""
    now = now or utcnow()
    since = now - limits.window
    by_name = _wait(session, LoginFailure.user_name, _key(user_name), limits.per_name, since, now)
    if by_name:
        raise TooManySignIns(f"too many failed sign-ins for this user name: wait {_minutes(by_name)} and try "
                             "again, or ask an administrator to reset the password", by_name)
    by_client = _wait(session, LoginFailure.client, client[:64], limits.per_client, since, now)
    if by_client:
        raise TooManySignIns(f"too many failed sign-ins from this address: wait {_minutes(by_client)} and try "
                             "again", by_client)


def record_failure(session: Session, *, user_name: str, client: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    session.add(LoginFailure(user_name=_key(user_name), client=client[:64], at=now))
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - KEEP))
    session.flush()
    log.warning("failed sign-in for %r from %s", _key(user_name), client)


def clear(session: Session, *, user_name: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.user_name == _key(user_name)))
    session.flush()


def failures(session: Session, *, user_name: str) -> int:
    return int(session.scalar(select(func.count()).select_from(LoginFailure)
                              .where(LoginFailure.user_name == _key(user_name))) or 0)


def _minutes(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{(seconds + 59) // 60} minutes"
