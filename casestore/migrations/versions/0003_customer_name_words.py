"""Customer name words: an indexed look-up of customers by a word of their name (a surname), which
the matcher asks for every item that signs with a name; it was a LIKE '%word%' scan of every name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORD_MAX = 100  # casestore.models.NAME_WORD_MAX at the time of this migration
BATCH = 5000


def upgrade() -> None:
    words = op.create_table(
        "customer_name_words",
        sa.Column("word", sa.String(length=WORD_MAX), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_customer_name_words_customer_id_customers",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("word", "customer_id", name="pk_customer_name_words"),
    )
    op.create_index("ix_customer_name_words_customer_id", "customer_name_words", ["customer_id"])
    # Backfill from the names already stored, in batches.
    bind = op.get_bind()
    customers = sa.table("customers", sa.column("id", sa.Integer()), sa.column("name", sa.String()))
    last = 0
    while True:
        rows = bind.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.id > last)
                            .order_by(customers.c.id).limit(BATCH)).all()
        if not rows:
            break
        values = [{"word": w, "customer_id": cid} for cid, name in rows
                  for w in dict.fromkeys(w[:WORD_MAX] for w in (name or "").lower().split())]
        if values:
            bind.execute(words.insert(), values)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_customer_name_words_customer_id", table_name="customer_name_words")
    op.drop_table("customer_name_words")
