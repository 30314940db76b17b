"""Prospects meet the CRM: a retired prospect points at the customer it was merged into, and
``prospect_links`` records each prospect a CRM customer matched (``casestore.prospects``).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casestore.models import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN in place, never a batch copy of customers: on SQLite that drops the old table,
    # and its ON DELETE CASCADE would empty customer_name_words
    if op.get_bind().dialect.name == "sqlite":  # a column with its REFERENCES, added in place
        op.execute("ALTER TABLE customers ADD COLUMN merged_into_id INTEGER "
                   "CONSTRAINT fk_customers_merged_into_id_customers REFERENCES customers (id)")
    else:
        op.add_column("customers", sa.Column("merged_into_id", sa.Integer(), nullable=True))
        op.create_foreign_key("fk_customers_merged_into_id_customers", "customers", "customers",
                              ["merged_into_id"], ["id"])
    op.create_table(
        "prospect_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prospect_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("matched_on", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.CheckConstraint("state IN ('merged', 'review', 'dismissed')", name="ck_prospect_links_state"),
        sa.ForeignKeyConstraint(["prospect_id"], ["customers.id"], name="fk_prospect_links_prospect_id_customers",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_prospect_links_customer_id_customers",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_prospect_links"),
        sa.UniqueConstraint("prospect_id", "customer_id", name="uq_prospect_links_prospect_id_customer_id"),
    )
    op.create_index("ix_prospect_links_state", "prospect_links", ["state"])


def downgrade() -> None:
    op.drop_index("ix_prospect_links_state", table_name="prospect_links")
    op.drop_table("prospect_links")
    if op.get_bind().dialect.name == "sqlite":  # SQLite 3.35+ drops a column in place (no table copy)
        op.execute("ALTER TABLE customers DROP COLUMN merged_into_id")
    else:
        op.drop_constraint("fk_customers_merged_into_id_customers", "customers", type_="foreignkey")
        op.drop_column("customers", "merged_into_id")
