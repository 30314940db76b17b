"""Outbound messages name the work task they were sent for (``outbound_messages.task_id``), so a
task with ``requires_outbound`` can see that a message went out for it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
    op.create_index("ix_outbound_messages_task_id", "outbound_messages", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_task_id", table_name="outbound_messages")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("task_id")
