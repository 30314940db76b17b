"""Notifications (issue 10): what a person has seen of their notification feed, and an index that
reads the feed's events without walking the audit log.

* ``notification_marks``: per user, the id of the newest notice they marked seen
  (``seen_up_to``): every notice with a higher id is unread.  One row per user, written by
  ``POST /api/v1/notifications/seen``; removed with the user.
* ``ix_audit_events_notices``: a partial index on ``audit_events (id)`` for the events the feed
  reads (``action = 'sla.notify'``), so the newest notices are an index range, not a scan of
  every audit event.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casestore.models import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTICES = sa.text("action = 'sla.notify'")


def upgrade() -> None:
    op.create_table(
        "notification_marks",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seen_up_to", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_audit_events_notices", "audit_events", ["id"], sqlite_where=NOTICES,
                    postgresql_where=NOTICES)


def downgrade() -> None:
    op.drop_index("ix_audit_events_notices", table_name="audit_events")
    op.drop_table("notification_marks")
