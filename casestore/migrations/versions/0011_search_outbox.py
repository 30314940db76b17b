"""The search outbox: index updates written in the transaction that made them necessary.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casestore.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(36), nullable=True),
        sa.Column("case_ref", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("(item_id IS NULL) <> (case_ref IS NULL)", name="ck_search_outbox_one_target"),
        sa.PrimaryKeyConstraint("id", name="pk_search_outbox"),
    )
    op.create_index("ix_search_outbox_due", "search_outbox", ["next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_search_outbox_due", table_name="search_outbox")
    op.drop_table("search_outbox")
