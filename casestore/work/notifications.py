"""The notification feed: what the engine addressed to a role, shown to the people it reaches.

A notice is an audit event addressed to a role: today ``sla.notify``, written by an escalation's
``notify_role`` (``casestore.work.escalation``) with the role, the clock and the event (warn or
breach) in its details.  The feed is a read model over the audit log (no copy of the events), so
what a person is told is exactly what the audit trail says happened.

Who gets a notice addressed to role R on a case:

1. **Only cases they may see**: the access policy's own rule as SQL
   (``casestore.access.case_visible_clause``); a notice of a case their teams may not see does not
   exist for them.
2. **The case's team**: a person with teams gets the notices of cases of their teams (and of cases
   of no team they may see), even when their role sees every case: a supervisor of the
   complaints team is not told about the claims team's breaches.  A supervisor or admin with no
   team (a head of operations) gets the notices of every team.
3. **Their role, and the roles below it**: R itself, and every role whose actions in the case's
   type (the version the case runs) are a strict subset of theirs.  With the shipped matrices an
   admin gets the supervisors' and the agents' notices, a supervisor the agents', an agent only
   its own.  A role the type does not name gets only what is addressed to it by name.

Read state is one mark per person (``NotificationMark.seen_up_to``, migration 0018): notices with
a higher id are unread; marking seen never moves the mark back.

Partial: only ``sla.notify`` events are notices (other events addressed to a role would join
``NOTICE_ACTIONS`` with a ``role`` in their details); the unread count stops at ``UNREAD_CAP``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Row, Select, and_, false, func, or_, select, true, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casestore.access import Subject, case_visible_clause, sees_all
from casestore.errors import InvalidInput, NotFound
from casestore.models import AuditEvent, Case, User, utcnow
from casestore.work.definitions import CaseType
from casestore.work.models import CaseTypeVersion, CaseWork, NotificationMark
from casestore.work.registry import get_definition

log = logging.getLogger(__name__)

NOTICE_ACTIONS = ("sla.notify",)  # the partial index ix_audit_events_notices covers exactly these
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
UNREAD_CAP = 100
_EVENT_WORDS = {"warn": "is at risk", "breach": "is breached"}


class Notice(BaseModel):
    """One notice in a person's feed."""

    id: int = Field(description="the audit event's id (the feed is ordered by it, newest first)")
    at: datetime
    action: Literal["sla.notify"]
    case_ref: str
    case_subject: str
    case_team: str | None
    case_type: str
    role: str = Field(description="the role the notice is addressed to (yours or one below it)")
    clock: str | None = None
    clock_title: str | None = None
    event: str | None = Field(default=None, description="warn or breach")
    message: str
    unread: bool


class NotificationFeed(BaseModel):
    notices: list[Notice]
    unread: int = Field(description=f"unread notices, counted up to {UNREAD_CAP}")
    unread_capped: bool = Field(description=f"true when there are at least {UNREAD_CAP} unread notices")
    seen_up_to: int = Field(description="your mark: notices with a higher id are unread")
    next_before: int | None = Field(description="pass as ?before= for older notices; null on the last page")


class SeenMark(BaseModel):
    seen_up_to: int
    unread: int
    unread_capped: bool


def _role_of_event() -> ColumnElement[Any]:
    return AuditEvent.details["role"].as_string()


def covered_roles(case_type: CaseType, role: str) -> set[str]:
    """The roles whose notices ``role`` gets on cases of this type: itself, and every role whose
    actions are a strict subset of its own (rule 3 of the module docstring)."""
    mine = set(case_type.roles.get(role, ()))
    below = {other for other, actions in case_type.roles.items() if mine and set(actions) < mine}
    return {role} | below


def _role_clause(session: Session, who: Subject) -> ColumnElement[bool]:
    """Rule 3 as SQL: one condition per distinct set of covered roles over the stored versions."""
    pairs_by_roles: dict[frozenset[str], list[tuple[str, int]]] = defaultdict(list)
    for name, version in session.execute(select(CaseTypeVersion.name, CaseTypeVersion.version)):
        roles = frozenset(covered_roles(get_definition(session, name, version), who.role))
        pairs_by_roles[roles].append((name, version))
    role = _role_of_event()
    clauses: list[ColumnElement[bool]] = [role == who.role]  # by name, whatever the type (or a case without work)
    for roles, pairs in pairs_by_roles.items():
        others = sorted(roles - {who.role})
        if others:
            clauses.append(and_(tuple_(CaseWork.case_type, CaseWork.type_version).in_(pairs), role.in_(others)))
    return or_(*clauses)


def _team_clause(who: Subject) -> ColumnElement[bool]:
    """Rule 2: the person's teams (and cases of no team); everything for a see-all role with no team."""
    if who.teams:
        return or_(Case.team.is_(None), Case.team.in_(list(who.teams)))
    return true() if sees_all(who) else Case.team.is_(None)


def _conditions(session: Session, who: Subject) -> list[ColumnElement[bool]]:
    if who.disabled:
        return [false()]
    return [AuditEvent.action.in_(NOTICE_ACTIONS), case_visible_clause(who), _team_clause(who),
            _role_clause(session, who)]


def _base(session: Session, who: Subject, *columns: Any) -> Select[Any]:
    return (select(*columns).select_from(AuditEvent).join(Case, Case.id == AuditEvent.case_id)
            .outerjoin(CaseWork, CaseWork.case_id == Case.id).where(*_conditions(session, who)))


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def _mark(session: Session, user: User) -> int:
    return int(session.scalar(select(NotificationMark.seen_up_to).where(NotificationMark.user_id == user.id)) or 0)


def unread_count(session: Session, who: Subject, *, cap: int = UNREAD_CAP) -> int:
    """How many notices ``who`` has not marked seen, counted up to ``cap`` (the page header's badge)."""
    user = _user(session, who.name)
    inner = _base(session, who, AuditEvent.id).where(AuditEvent.id > _mark(session, user)).limit(cap).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def _notice(session: Session, row: Row[Any], mark: int) -> Notice:
    event_id, at, details, ref, subject, team, work_type, work_version, case_type = tuple(row)
    details = dict(details or {})
    clock, on = details.get("clock"), details.get("event")
    title = None
    if work_type is not None and clock:
        ct = get_definition(session, work_type, work_version)
        title = next((c.title for c in ct.clocks if c.name == clock), None) or None
    what = title or (f"clock {clock}" if clock else "a clock")
    message = f"{ref}: {what} {_EVENT_WORDS.get(str(on), str(on))}"
    return Notice(id=event_id, at=at, action="sla.notify", case_ref=ref, case_subject=subject or "", case_team=team,
                  case_type=work_type or case_type, role=str(details.get("role", "")), clock=clock, clock_title=title,
                  event=on, message=message, unread=event_id > mark)


def feed(session: Session, who: Subject, *, before: int | None = None, limit: int = PAGE_SIZE,
         unread_only: bool = False) -> NotificationFeed:
    """The newest notices ``who`` gets (the module docstring's rules), ``before`` an id for older ones."""
    if before is not None and before < 1:
        raise InvalidInput("before must be a notice id (a positive number) from next_before")
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    user = _user(session, who.name)
    mark = _mark(session, user)
    stmt = _base(session, who, AuditEvent.id, AuditEvent.at, AuditEvent.details, Case.ref, Case.subject, Case.team,
                 CaseWork.case_type, CaseWork.type_version, Case.case_type)
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    if unread_only:
        stmt = stmt.where(AuditEvent.id > mark)
    rows = session.execute(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)).all()
    notices = [_notice(session, row, mark) for row in rows[:limit]]
    unread = unread_count(session, who)
    return NotificationFeed(notices=notices, unread=unread, unread_capped=unread >= UNREAD_CAP, seen_up_to=mark,
                            next_before=notices[-1].id if len(rows) > limit else None)


def mark_seen(session: Session, who: Subject, *, up_to: int | None = None) -> SeenMark:
    """Mark ``who``'s notices seen up to the id ``up_to`` (None: the newest they get).  The mark
    never moves back.  Flushes, never commits."""
    if up_to is not None and up_to < 0:
        raise InvalidInput("up_to must be a notice id (0 or more)")
    user = _user(session, who.name)
    if up_to is None:
        up_to = int(session.scalar(_base(session, who, func.max(AuditEvent.id))) or 0)
    now = utcnow()
    row = session.get(NotificationMark, user.id)
    if row is None:
        try:
            with session.begin_nested():
                session.add(NotificationMark(user_id=user.id, seen_up_to=up_to, seen_at=now))
                session.flush()
        except IntegrityError:  # marked at the same moment from another tab
            row = session.get(NotificationMark, user.id, populate_existing=True)
    if row is not None and up_to > row.seen_up_to:
        row.seen_up_to, row.seen_at = up_to, now
        session.flush()
    log.info("notifications: %s marked seen up to %d", who.name, up_to)
    unread = unread_count(session, who)
    return SeenMark(seen_up_to=_mark(session, user), unread=unread, unread_capped=unread >= UNREAD_CAP)
