"""Case list plans: a partial index over the few cases whose urgency was raised ("most urgent
first"), and the owner index made partial (NULLs excluded) so SQLite's statistics see how few cases
one person owns ("owned by me" walked every case).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_URGENT = sa.text("urgency > 0")
_OWNED = sa.text("assignee IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_case_work_urgent", "case_work", ["urgency"],
                    sqlite_where=_URGENT, postgresql_where=_URGENT)
    op.drop_index("ix_case_work_assignee", table_name="case_work")
    op.create_index("ix_case_work_assignee", "case_work", ["assignee"], sqlite_where=_OWNED, postgresql_where=_OWNED)


def downgrade() -> None:
    op.drop_index("ix_case_work_assignee", table_name="case_work")
    op.create_index("ix_case_work_assignee", "case_work", ["assignee"])
    op.drop_index("ix_case_work_urgent", table_name="case_work")
