"""Figures for the operations page: intake since a moment per channel and outcome, the latest
dead-lettered items (as the pipeline recorded them, see ``items.record_failure``), the triage
backlog and the dead-letter backlog (also for ``/metrics``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.items import dead_letter_actions
from casestore.models import OUTCOMES, Item, ItemFailure
from casestore.validation import as_utc


class ChannelIntake(BaseModel):
    channel: str
    outcomes: dict[str, int]  # attached, new_case, triage, noise
    total: int


class FailureRow(BaseModel):
    item_id: str | None
    failed_at: datetime
    stage: str
    error_class: str
    message: str
    source: str
    file_name: str


class TriageBacklog(BaseModel):
    waiting: int
    oldest_received_at: datetime | None



def intake_since(session: Session, *, since: datetime) -> list[ChannelIntake]:
    """Items received since ``since`` per channel and outcome."""
    counts: dict[str, dict[str, int]] = {}
    for channel, outcome, n in session.execute(
        select(Item.channel, Item.outcome, func.count()).where(Item.received_at >= since)
        .group_by(Item.channel, Item.outcome)
    ):
        counts.setdefault(channel, dict.fromkeys(OUTCOMES, 0))[outcome] = int(n)
    return [ChannelIntake(channel=c, outcomes=o, total=sum(o.values())) for c, o in sorted(counts.items())]


def failed_since(session: Session, *, since: datetime) -> int:
    """Distinct items dead-lettered since ``since`` (a failed item has no channel row to count by)."""
    return int(session.scalar(select(func.count(func.distinct(ItemFailure.item_id)))
                              .where(ItemFailure.failed_at >= since)) or 0)


def recent_failures(session: Session, *, limit: int = 50) -> list[FailureRow]:
    rows = session.scalars(select(ItemFailure).order_by(ItemFailure.failed_at.desc(), ItemFailure.id.desc())
                           .limit(limit))
    return [FailureRow(item_id=f.item_id, failed_at=f.failed_at, stage=f.stage, error_class=f.error_class,
                       message=f.message, source=f.source, file_name=_file_name(f.source)) for f in rows]


def _file_name(source: str) -> str:
    if not source:
        return ""
    return PurePath(source.split("#", 1)[0]).name or source


def triage_backlog(session: Session) -> TriageBacklog:
    waiting, oldest = session.execute(
        select(func.count(), func.min(Item.received_at)).where(Item.outcome == "triage")).one()
    return TriageBacklog(waiting=int(waiting or 0), oldest_received_at=oldest)


def dead_letter_backlog(session: Session) -> int:
    """Items that failed in a stage, are not filed, and have a failure newer than the last replay
    or discard a person recorded for them: what ``casework dlq list`` shows, counted from the store
    (the failures the pipeline recorded, ``items.record_failure``) instead of the dead-letter topic."""
    filed = select(Item.item_id).where(Item.item_id == ItemFailure.item_id).exists()
    rows = session.execute(
        select(ItemFailure.item_id, ItemFailure.stage, func.max(ItemFailure.failed_at))
        .where(ItemFailure.item_id.is_not(None), ~filed)
        .group_by(ItemFailure.item_id, ItemFailure.stage)
    ).all()
    handled = dead_letter_actions(session, keys=[str(item_id) for item_id, _, _ in rows])
    waiting: set[str] = set()
    for item_id, stage, last_failed in rows:
        done = handled.get((str(item_id), str(stage)))
        if done is None or as_utc(last_failed) > as_utc(done[1]):
            waiting.add(str(item_id))
    return len(waiting)
