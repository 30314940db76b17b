"""Case work: stored case-type versions, each case's work state, tasks, SLA clocks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casestore.models import JSONType, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("state = 'queued'")
ACTIVE = sa.text("state = 'active'")
FIRES = sa.text("next_fire_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "case_type_versions",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", JSONType, nullable=False),
        sa.Column("source", sa.Text(), server_default="", nullable=False),
        sa.Column("loaded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_case_type_versions"),
    )
    op.create_table(
        "case_work",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("case_type", sa.String(63), nullable=False),
        sa.Column("type_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(63), nullable=True),
        sa.Column("status", sa.String(32), server_default="open", nullable=False),
        sa.Column("urgency", sa.Integer(), server_default="0", nullable=False),
        sa.Column("assignee", sa.String(100), nullable=True),
        sa.Column("completion_code", sa.String(100), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("reopened", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("status IN ('open', 'in_progress', 'awaiting_customer', 'awaiting_third_party', "
                           "'pending', 'closed')", name="ck_case_work_status"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_work_case_id_cases", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id", name="pk_case_work"),
    )
    op.create_index("ix_case_work_assignee", "case_work", ["assignee"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("iteration", sa.Integer(), server_default="1", nullable=False),
        sa.Column("state", sa.String(16), server_default="queued", nullable=False),
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("urgency", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("assignee", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("lease_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("checklist", JSONType, nullable=False),
        sa.Column("completion_code", sa.String(100), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("completed_by", sa.String(100), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'active', 'completed', 'skipped', 'cancelled')",
                           name="ck_tasks_state"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_tasks_case_id_cases", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("case_id", "name", "iteration", name="uq_tasks_case_id_name_iteration"),
    )
    op.create_index("ix_tasks_case_id", "tasks", ["case_id"])
    op.create_index("ix_tasks_pick", "tasks", ["queue", sa.text("urgency DESC"), "due_at", "id"],
                    sqlite_where=QUEUED, postgresql_where=QUEUED)
    op.create_index("ix_tasks_assignee", "tasks", ["assignee"], sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_index("ix_tasks_lease", "tasks", ["lease_expires_at"], sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), server_default="running", nullable=False),
        sa.Column("calendar", sa.String(63), nullable=False),
        sa.Column("budget_seconds", sa.Integer(), nullable=False),
        sa.Column("used_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("warn_percent", sa.Integer(), server_default="75", nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("resumed_at", UTCDateTime(), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("warn_at", UTCDateTime(), nullable=True),
        sa.Column("next_fire_at", UTCDateTime(), nullable=True),
        sa.Column("warned_at", UTCDateTime(), nullable=True),
        sa.Column("breached_at", UTCDateTime(), nullable=True),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("state IN ('running', 'paused', 'stopped')", name="ck_sla_clocks_state"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_sla_clocks_case_id_cases", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_sla_clocks"),
        sa.UniqueConstraint("case_id", "name", name="uq_sla_clocks_case_id_name"),
    )
    op.create_index("ix_sla_clocks_case_id", "sla_clocks", ["case_id"])
    op.create_index("ix_sla_clocks_next_fire_at", "sla_clocks", ["next_fire_at"], sqlite_where=FIRES,
                    postgresql_where=FIRES)


def downgrade() -> None:
    op.drop_table("sla_clocks")
    op.drop_table("tasks")
    op.drop_table("case_work")
    op.drop_table("case_type_versions")
