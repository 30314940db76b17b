"""Tables of the case-work domain: stored definitions, a case's work state, tasks, SLA clocks.

Created by migration 0005 (0007 adds ``case_work.stage_task_floor``).  ``casestore.work`` owns these
tables; other domains never read them.

Ordering of a queue (get-next) is ``urgency DESC, due_at ASC, id ASC`` over ``state='queued'``
rows, served by the partial index ``ix_tasks_pick``.  ``due_at`` is never NULL (NULL sorts
differently on SQLite and PostgreSQL): a task of a case with no running clock carries
``NO_DUE``.  The clock loop reads clocks by ``next_fire_at`` (the next warn or breach moment,
NULL when paused or stopped), so a sweep with nothing due touches no rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from casestore.models import Base, JSONType, utcnow

WORK_STATUSES: tuple[str, ...] = ("open", "in_progress", "awaiting_customer", "awaiting_third_party", "pending",
                                  "closed")
COARSE_STATUS = {"open": "open", "in_progress": "open", "awaiting_customer": "pending",
                 "awaiting_third_party": "pending", "pending": "pending", "closed": "closed"}
TASK_STATES: tuple[str, ...] = ("queued", "active", "completed", "skipped", "cancelled")
OPEN_TASK_STATES: tuple[str, ...] = ("queued", "active")
CLOCK_STATES = ("running", "paused", "stopped")
NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CaseTypeVersion(Base):
    """A case-type definition as loaded: each (name, version) once; a running case keeps its version."""

    __tablename__ = "case_type_versions"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the definition's canonical JSON
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source: Mapped[str] = mapped_column(Text, default="", server_default="")  # the file it came from
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseWork(Base):
    """The work state of one case: its type version, stage, fine status, urgency and owner.

    ``status`` is one of ``WORK_STATUSES``; the case's own coarse ``cases.status`` follows it
    (``COARSE_STATUS``), so search facets and older readers keep working.
    """

    __tablename__ = "case_work"
    __table_args__ = (
        CheckConstraint(_in("status", WORK_STATUSES), name="status"),
        # the case list's "most urgent first" reads the few raised cases here (0014)
        Index("ix_case_work_urgent", "urgency", sqlite_where=text("urgency > 0"),
              postgresql_where=text("urgency > 0")),
        # partial, so SQLite's statistics count owners only (over every row, the NULLs made one
        # person's cases look like half the table and the case list walked all cases instead) (0014)
        Index("ix_case_work_assignee", "assignee", sqlite_where=text("assignee IS NOT NULL"),
              postgresql_where=text("assignee IS NOT NULL")),
    )

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    case_type: Mapped[str] = mapped_column(String(63))
    type_version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(63))  # None: every stage done (or the case closed)
    status: Mapped[str] = mapped_column(String(32), default="open", server_default="open")
    urgency: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    assignee: Mapped[str | None] = mapped_column(String(100))  # who owns the case, if anyone
    completion_code: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    reopened: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # tasks of the current stage with id <= this belong to an earlier pass of it (the stage was reopened)
    stage_task_floor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WorkTask(Base):
    """One enabled task of a case (a row exists only once a task is enabled)."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("state", TASK_STATES), name="state"),
        UniqueConstraint("case_id", "name", "iteration"),
        Index("ix_tasks_pick", "queue", text("urgency DESC"), "due_at", "id",
              sqlite_where=text("state = 'queued'"), postgresql_where=text("state = 'queued'")),
        Index("ix_tasks_assignee", "assignee", sqlite_where=text("state = 'active'"),
              postgresql_where=text("state = 'active'")),
        Index("ix_tasks_lease", "lease_expires_at", sqlite_where=text("state = 'active'"),
              postgresql_where=text("state = 'active'")),
        Index("ix_tasks_oldest", "queue", "created_at", sqlite_where=text("state = 'queued'"),
              postgresql_where=text("state = 'queued'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))  # the unique index serves look-ups
    stage: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    iteration: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    state: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    queue: Mapped[str] = mapped_column(String(63))
    urgency: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    due_at: Mapped[datetime] = mapped_column(default=lambda: NO_DUE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    assignee: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]  # None while active: held until released (a reassignment)
    lease_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # bumped on every claim
    checklist: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # item -> {state, by, at, reason}
    completion_code: Mapped[str | None] = mapped_column(String(100))
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(100))


_FIRED = "(warned_at IS NOT NULL OR breached_at IS NOT NULL) AND state <> 'stopped'"


class SlaClock(Base):
    """One SLA clock of a case.  ``used_seconds`` is the working time used before ``resumed_at``;
    while running, ``due_at = due(resumed_at, budget - used, calendar)``."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        CheckConstraint(_in("state", CLOCK_STATES), name="state"),
        UniqueConstraint("case_id", "name"),
        Index("ix_sla_clocks_next_fire_at", "next_fire_at",
              sqlite_where=text("next_fire_at IS NOT NULL"), postgresql_where=text("next_fire_at IS NOT NULL")),
        Index("ix_sla_clocks_warn_at", "warn_at", sqlite_where=text("state = 'running'"),
              postgresql_where=text("state = 'running'")),
        Index("ix_sla_clocks_fired", "case_id", sqlite_where=text(_FIRED), postgresql_where=text(_FIRED)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))  # the unique index serves look-ups
    name: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16), default="running", server_default="running")
    calendar: Mapped[str] = mapped_column(String(63))
    budget_seconds: Mapped[int] = mapped_column(Integer)
    used_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    warn_percent: Mapped[int] = mapped_column(Integer, default=75, server_default="75")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    resumed_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    warn_at: Mapped[datetime | None]
    next_fire_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]


class SavedView(Base):
    """A person's named case list: the filters and sort of ``casestore.work.case_lists.CaseFilter``
    (as its JSON), shown on their work page and the case list.  Created by migration 0009."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_views_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationMark(Base):
    """How far a person has read their notification feed: every notice with an id above
    ``seen_up_to`` is unread (``casestore.work.notifications``).  Created by migration 0018."""

    __tablename__ = "notification_marks"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    seen_up_to: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueCount(Base):
    """Waiting and active tasks of a queue, per case team (``team_key``: the team, '' for an
    unrestricted case of no team, '~restricted' for a restricted one), as of the last fold.  The
    deltas since are in ``QueueCountDelta``; triggers of migration 0012 write them."""

    __tablename__ = "queue_counts"

    queue: Mapped[str] = mapped_column(String(63), primary_key=True)
    team_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    queued: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class QueueCountDelta(Base):
    """One change to a queue's counts, appended by a trigger in the transaction that made it."""

    __tablename__ = "queue_count_deltas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(63))
    team_key: Mapped[str] = mapped_column(String(100))
    queued: Mapped[int] = mapped_column(Integer)
    active: Mapped[int] = mapped_column(Integer)
