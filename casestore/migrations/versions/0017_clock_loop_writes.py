"""Cheaper writes for the clock loop and the calendar change (issue 10, 10,000 breaches and a
million clocks moved): fewer index entries per row.

* ``ix_tasks_case_id`` and ``ix_sla_clocks_case_id`` are dropped: the unique indexes on
  (case_id, name, iteration) and (case_id, name) start with ``case_id`` and serve the same look-ups.
  Every change of a clock's moments or a task's queue, urgency or due time writes a new row version
  with an entry in each index (the columns are indexed, so no HOT update): one index fewer is one
  entry fewer per clock and per task moved.
* ``ix_audit_events_item_id`` becomes partial (``item_id IS NOT NULL``): case events, most of them
  and all that the clock loop writes, have no item; ``item_id = ?`` and ``item_id IN (...)`` still
  use the index on both databases.

The queue-count trigger's join of changed tasks to their cases was looked at too: it runs as a
merge join over the ``cases`` primary key (0.14-0.2 s per 10,000 escalated tasks at 500,000 cases),
but a per-row look-up measured twice as slow (0.37-0.48 s), so it stays as it is.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_tasks_case_id", table_name="tasks")
    op.drop_index("ix_sla_clocks_case_id", table_name="sla_clocks")
    op.drop_index("ix_audit_events_item_id", table_name="audit_events")
    not_null = sa.text("item_id IS NOT NULL")
    op.create_index("ix_audit_events_item_id", "audit_events", ["item_id"], sqlite_where=not_null,
                    postgresql_where=not_null)


def downgrade() -> None:
    op.drop_index("ix_audit_events_item_id", table_name="audit_events")
    op.create_index("ix_audit_events_item_id", "audit_events", ["item_id"])
    op.create_index("ix_sla_clocks_case_id", "sla_clocks", ["case_id"])
    op.create_index("ix_tasks_case_id", "tasks", ["case_id"])
