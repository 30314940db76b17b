"""Token lifecycle: a label saying what a token is for, an expiry, and when it was revoked.

Existing tokens keep working: no label, no expiry; a token revoked before this migration has no
``revoked_at``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LABEL_MAX = 200  # casestore.users.LABEL_MAX at the time of this migration


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("label", sa.String(length=LABEL_MAX), nullable=True))
    op.add_column("api_tokens", sa.Column("expires_at", _ts(), nullable=True))
    op.add_column("api_tokens", sa.Column("revoked_at", _ts(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
        batch.drop_column("label")
