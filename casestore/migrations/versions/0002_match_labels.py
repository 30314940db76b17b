"""Match labels: how an agent resolved a triaged item (attach, new case, noise), kept for
retraining the matcher and the document-type model.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "match_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=100), nullable=True),
        sa.Column("doc_type", sa.String(length=100), nullable=False),
        sa.Column("predicted_outcome", sa.String(length=16), nullable=False),
        sa.Column("predicted_doc_type", sa.String(length=100), nullable=False),
        sa.Column("candidates", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('attach', 'new_case', 'noise')", name="ck_match_labels_action"),
        sa.ForeignKeyConstraint(["item_id"], ["items.item_id"], name="fk_match_labels_item_id_items"),
        sa.PrimaryKeyConstraint("id", name="pk_match_labels"),
    )
    op.create_index("ix_match_labels_item_id", "match_labels", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_match_labels_item_id", table_name="match_labels")
    op.drop_table("match_labels")
