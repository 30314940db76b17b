"""Outbound correspondence: the outbox, flagged addresses, and direction + delivery state of items.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casestore.models import JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUT = sa.text("direction = 'out'")
QUEUED = sa.text("state = 'queued'")
CLAIMED = sa.text("state IN ('sending', 'committing')")
STATES = ("'queued', 'sending', 'committing', 'unconfirmed', 'sent', 'delivered', 'failed', 'bounced', "
          "'to_print', 'printed', 'posted', 'held'")


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:  # SQLite: plain ADD COLUMNs (no table copy needed)
        batch.add_column(sa.Column("direction", sa.String(3), server_default="in", nullable=False))
        batch.add_column(sa.Column("delivery_state", sa.String(16), nullable=True))
    op.create_index("ix_items_outbound", "items", ["received_at"], sqlite_where=OUT, postgresql_where=OUT)
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("template", sa.String(100), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("recipient_key", sa.String(320), nullable=False),
        sa.Column("postal_address", sa.Text(), nullable=True),
        sa.Column("from_address", sa.String(320), server_default="", nullable=False),
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attachments", JSONType, nullable=False),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("in_reply_to", sa.String(300), nullable=True),
        sa.Column("thread_ids", JSONType, nullable=False),
        sa.Column("automatic", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claim_token", sa.String(36), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("printed_at", UTCDateTime(), nullable=True),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("channel IN ('email', 'sms', 'letter')", name="ck_outbound_messages_channel"),
        sa.CheckConstraint(f"state IN ({STATES})", name="ck_outbound_messages_state"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_outbound_messages_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
        sa.UniqueConstraint("message_id", name="uq_outbound_messages_message_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbound_messages_idempotency_key"),
    )
    op.create_index("ix_outbound_messages_case_id", "outbound_messages", ["case_id"])
    op.create_index("ix_outbound_messages_state", "outbound_messages", ["state"])
    op.create_index("ix_outbound_messages_provider_id", "outbound_messages", ["provider_id"])
    op.create_index("ix_outbound_messages_recipient_key_created_at", "outbound_messages",
                    ["recipient_key", "created_at"])
    op.create_index("ix_outbound_messages_due", "outbound_messages", ["next_attempt_at"],
                    sqlite_where=QUEUED, postgresql_where=QUEUED)
    op.create_index("ix_outbound_messages_claimed", "outbound_messages", ["claimed_until"],
                    sqlite_where=CLAIMED, postgresql_where=CLAIMED)
    op.create_table(
        "flagged_addresses",
        sa.Column("address_key", sa.String(320), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("outbound_id", sa.String(36), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("flagged_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_flagged_addresses_case_id_cases",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("address_key", name="pk_flagged_addresses"),
    )


def downgrade() -> None:
    op.drop_table("flagged_addresses")
    op.drop_table("outbound_messages")
    op.drop_index("ix_items_outbound", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("delivery_state")
        batch.drop_column("direction")
