"""Case work: ``case_work.stage_task_floor``, so a reopened stage runs its tasks again.

Tasks of the case's current stage whose id is at most this floor belong to an earlier pass of
that stage (before a supervisor reopened it): they are history, not work done in this pass.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("case_work") as batch:
        batch.add_column(sa.Column("stage_task_floor", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("case_work") as batch:
        batch.drop_column("stage_task_floor")
