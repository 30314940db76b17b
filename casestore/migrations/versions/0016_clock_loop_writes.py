"""Cheaper writes for the clock loop and the calendar change (issue 10, 10,000 breaches and a
million clocks moved): fewer index entries per row, and a queue-count trigger that looks cases up.

* ``ix_tasks_case_id`` and ``ix_sla_clocks_case_id`` are dropped: the unique indexes on
  (case_id, name, iteration) and (case_id, name) start with ``case_id`` and serve the same look-ups.
  Every change of a clock's moments or a task's queue, urgency or due time writes a new row version
  with an entry in each index (the columns are indexed, so no HOT update): one index fewer is one
  entry fewer per clock and per task moved.
* ``ix_audit_events_item_id`` becomes partial (``item_id IS NOT NULL``): case events, most of them
  and all that the clock loop writes, have no item; ``item_id = ?`` and ``item_id IN (...)`` still
  use the index on both databases.
* PostgreSQL: the statement trigger ``queue_counts_task_update`` found each changed task's case
  team by a join that the planner, knowing nothing of the transition tables' size, ran as a merge
  join over the whole ``cases`` primary key (0.14-0.2 s per 10,000 escalated tasks at 500,000
  cases); it now looks the team up per row in ``cases``' primary key.  Same deltas.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "queue_counts_task_update"
_OPEN = "('queued', 'active')"
_CHANGED = "FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.state <> n.state OR o.queue <> n.queue)"
_ROWS = (  # as in 0012: (queue, case_id, queued delta, active delta) of each task whose state or queue changed
    "SELECT o.queue, o.case_id, -(CASE WHEN o.state = 'queued' THEN 1 ELSE 0 END) AS dq, "
    f"-(CASE WHEN o.state = 'active' THEN 1 ELSE 0 END) AS da {_CHANGED} AND o.state IN {_OPEN} UNION ALL "
    "SELECT n.queue, n.case_id, (CASE WHEN n.state = 'queued' THEN 1 ELSE 0 END), "
    f"(CASE WHEN n.state = 'active' THEN 1 ELSE 0 END) {_CHANGED} AND n.state IN {_OPEN}")
_KEY = "COALESCE(c.team, CASE WHEN c.restricted THEN '~restricted' ELSE '' END)"
_INS = "INSERT INTO queue_count_deltas (queue, team_key, queued, active)"
_BY_LOOKUP = (f"{_INS} SELECT d.queue, d.team_key, SUM(d.dq), SUM(d.da) FROM "
              f"(SELECT r.queue, (SELECT {_KEY} FROM cases c WHERE c.id = r.case_id) AS team_key, r.dq, r.da "
              f"FROM ({_ROWS}) r) d "  # no case, no team key: left out, as the join of 0012 left it out
              "WHERE d.team_key IS NOT NULL GROUP BY d.queue, d.team_key HAVING SUM(d.dq) <> 0 OR SUM(d.da) <> 0")
_BY_JOIN = (f"{_INS} SELECT d.queue, {_KEY}, SUM(d.dq), SUM(d.da) FROM ({_ROWS}) d "
            "JOIN cases c ON c.id = d.case_id GROUP BY d.queue, 2 HAVING SUM(d.dq) <> 0 OR SUM(d.da) <> 0")


def _function(body: str) -> None:
    op.execute(f"CREATE OR REPLACE FUNCTION {_NAME}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
               f"{body};\nRETURN NULL;\nEND $$")


def upgrade() -> None:
    op.drop_index("ix_tasks_case_id", table_name="tasks")
    op.drop_index("ix_sla_clocks_case_id", table_name="sla_clocks")
    op.drop_index("ix_audit_events_item_id", table_name="audit_events")
    not_null = sa.text("item_id IS NOT NULL")
    op.create_index("ix_audit_events_item_id", "audit_events", ["item_id"], sqlite_where=not_null,
                    postgresql_where=not_null)
    if op.get_bind().dialect.name == "postgresql":
        _function(_BY_LOOKUP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _function(_BY_JOIN)
    op.drop_index("ix_audit_events_item_id", table_name="audit_events")
    op.create_index("ix_audit_events_item_id", "audit_events", ["item_id"])
    op.create_index("ix_sla_clocks_case_id", "sla_clocks", ["case_id"])
    op.create_index("ix_tasks_case_id", "tasks", ["case_id"])
