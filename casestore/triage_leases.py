"""Triage as a work queue: get-next hands the oldest waiting triage item to a person of the team
that works triage, with a lease like a task's, so two people never work the same item.

* ``next_item``: the oldest item in triage (``items.outcome = 'triage'``) that nobody holds (no
  claim, or its lease ran out) and ``viewer`` may see (``casestore.access`` rule 4), claimed for
  ``lease``.  On PostgreSQL the chosen item's row is locked ``FOR UPDATE SKIP LOCKED`` before the
  claim (a concurrent caller skips it, never waits; locking the whole page of candidates would
  leave the others nothing); SQLite's ``BEGIN IMMEDIATE`` writer lock orders the callers.
  The claim itself is guarded (``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the old lease ran
  out), so a lost race claims nothing and the next candidate is tried.
* ``release``: give back an item one holds.
* ``check_free_for``: resolving an item another person holds (live lease) is refused (409); an
  item nobody holds may still be resolved directly, as before triage had leases.

Every claim and release writes an audit event (``triage.claimed``, ``triage.released``).
Services flush, never commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from casestore import audit
from casestore.access.policy import Subject, sees_all, triage_hidden
from casestore.errors import Conflict, Forbidden, NotFound
from casestore.models import Item, TriageClaim

log = logging.getLogger(__name__)

CHUNK = 200


@dataclass(frozen=True)
class Claimed:
    item: Item
    lease_expires_at: datetime
    lease_version: int


def may_work_triage(viewer: Subject, team: str) -> bool:
    """Supervisors and admins, and the people of ``team`` (the team that works triage)."""
    return not viewer.disabled and (sees_all(viewer) or team in tuple(getattr(viewer, "teams", ()) or ()))


def _claim(session: Session, *, item_id: str, who: str, now: datetime, until: datetime) -> int | None:
    """Claim ``item_id`` unless someone holds it with a live lease; the new lease version or None."""
    dialect = session.get_bind().dialect.name
    build = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = build(TriageClaim).values(item_id=item_id, assignee=who, claimed_at=now, lease_expires_at=until,
                                     lease_version=1).on_conflict_do_update(
        index_elements=[TriageClaim.item_id],
        set_={"assignee": who, "claimed_at": now, "lease_expires_at": until,
              "lease_version": TriageClaim.lease_version + 1},
        where=TriageClaim.lease_expires_at <= now,
    ).returning(TriageClaim.lease_version)
    version = session.execute(stmt).scalar()
    return int(version) if version is not None else None


def next_item(session: Session, *, viewer: Subject, team: str, lease: timedelta, now: datetime) -> Claimed | None:
    """Claim the oldest free triage item ``viewer`` may see; None when there is none.  Forbidden
    unless ``viewer`` may work triage (``may_work_triage``)."""
    if not may_work_triage(viewer, team):
        raise Forbidden(f"triage is worked by team {team!r}; {viewer.name} is not in it: ask an administrator "
                        f"(casework user change {viewer.name} --team {team}) or a supervisor")
    pg = session.get_bind().dialect.name == "postgresql"
    free = or_(TriageClaim.item_id.is_(None), TriageClaim.lease_expires_at <= now)
    query = (select(Item).outerjoin(TriageClaim, TriageClaim.item_id == Item.item_id)
             .where(Item.outcome == "triage", free).order_by(Item.received_at, Item.item_id))
    start = 0
    while True:
        chunk = list(session.scalars(query.limit(CHUNK).offset(start)))
        hidden = triage_hidden(session, viewer, chunk)
        for item in chunk:
            if item.item_id in hidden:
                continue
            if pg and session.scalar(select(Item.item_id).where(Item.item_id == item.item_id)
                                     .with_for_update(skip_locked=True)) is None:
                continue  # another caller is claiming it this moment
            version = _claim(session, item_id=item.item_id, who=viewer.name, now=now, until=now + lease)
            if version is None:  # claimed by someone else since we read it
                continue
            audit.record(session, actor=viewer.name, action="triage.claimed", item_id=item.item_id,
                         details={"lease_version": version, "lease_expires_at": now + lease}, flush=False)
            log.info("triage item %s claimed by %s until %s", item.item_id, viewer.name, now + lease)
            return Claimed(item, now + lease, version)
        if len(chunk) < CHUNK:
            return None
        start += CHUNK


def holder(session: Session, *, item_id: str, now: datetime) -> TriageClaim | None:
    """The live claim on ``item_id``, if someone holds it."""
    claim = session.get(TriageClaim, item_id)
    return claim if claim is not None and claim.lease_expires_at > now else None


def check_free_for(session: Session, *, item_id: str, who: str, now: datetime) -> None:
    """Conflict when someone other than ``who`` holds ``item_id``; the claim, if any, ends (the
    caller is resolving the item)."""
    claim = holder(session, item_id=item_id, now=now)
    if claim is not None and claim.assignee != who:
        raise Conflict(f"triage item {item_id} is held by {claim.assignee} until "
                       f"{claim.lease_expires_at.isoformat(timespec='seconds')}; take another "
                       "(casework triage next), or wait for the lease to run out")
    session.execute(delete(TriageClaim).where(TriageClaim.item_id == item_id))


def release(session: Session, *, item_id: str, viewer: Subject, now: datetime, reason: str = "") -> None:
    """Give back an item ``viewer`` holds; Conflict when they do not hold it."""
    claim = holder(session, item_id=item_id, now=now)
    if session.get(Item, item_id) is None:
        raise NotFound(f"no item {item_id}; check the id (casework triage list)")
    if claim is None or claim.assignee != viewer.name:
        raise Conflict(f"you do not hold triage item {item_id}" + (f"; {claim.assignee} does" if claim else ""))
    claim.lease_expires_at = now  # free from now on; the row keeps its lease_version for the next claim
    session.flush()
    audit.record(session, actor=viewer.name, action="triage.released", item_id=item_id, reason=reason,
                 details={"lease_version": claim.lease_version})
    log.info("triage item %s released by %s", item_id, viewer.name)
