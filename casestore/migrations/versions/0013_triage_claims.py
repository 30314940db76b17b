"""Triage as a work queue: who holds which triage item, with a lease (``casestore.triage_leases``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casestore.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triage_claims",
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("assignee", sa.String(100), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=False),
        sa.Column("lease_version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.item_id"], name="fk_triage_claims_item_id_items",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id", name="pk_triage_claims"),
    )


def downgrade() -> None:
    op.drop_table("triage_claims")
