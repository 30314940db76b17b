"""Queue counts kept by the database: per (queue, case team) waiting and active task counts, and
indexes that let the at-risk / breached counts read only the clocks past their warning.

Every change of a task's state or queue (and a case's team, or a case deleted) appends a delta row
(``queue_count_deltas``) in the same transaction, by triggers, so no code path can forget it and
concurrent claims never wait for one another on a hot counter row: appending takes no lock on
anything shared.  The clock loop folds the deltas into ``queue_counts`` now and then
(``casestore.work.queue_counts.fold``); a count is the base plus the deltas not yet folded.

The case's team is kept as ``team_key``: the team, or '' for an unrestricted case of no team (every
agent sees it), or '~restricted' for a restricted case of no team (supervisors and admins only),
so an agent's counts cover the cases they may see (``casestore.work.visibility``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "('queued', 'active')"


def key(alias: str) -> str:
    return f"COALESCE({alias}.team, CASE WHEN {alias}.restricted THEN '~restricted' ELSE '' END)"


def one(state: str, what: str) -> str:
    return f"(CASE WHEN {state} = '{what}' THEN 1 ELSE 0 END)"


_INS = "INSERT INTO queue_count_deltas (queue, team_key, queued, active)"
# The same five row actions on both databases; only the trigger wrapping differs.
ON_TASK_INSERT = (f"{_INS} SELECT NEW.queue, {key('c')}, {one('NEW.state', 'queued')}, {one('NEW.state', 'active')} "
                  f"FROM cases c WHERE c.id = NEW.case_id AND NEW.state IN {OPEN}")
ON_TASK_UPDATE = [
    f"{_INS} SELECT NEW.queue, {key('c')}, {one('NEW.state', 'queued')} - {one('OLD.state', 'queued')}, "
    f"{one('NEW.state', 'active')} - {one('OLD.state', 'active')} FROM cases c "
    f"WHERE c.id = NEW.case_id AND OLD.queue = NEW.queue AND OLD.state <> NEW.state",
    f"{_INS} SELECT OLD.queue, {key('c')}, -{one('OLD.state', 'queued')}, -{one('OLD.state', 'active')} "
    f"FROM cases c WHERE c.id = OLD.case_id AND OLD.queue <> NEW.queue AND OLD.state IN {OPEN}",
    f"{_INS} SELECT NEW.queue, {key('c')}, {one('NEW.state', 'queued')}, {one('NEW.state', 'active')} "
    f"FROM cases c WHERE c.id = NEW.case_id AND OLD.queue <> NEW.queue AND NEW.state IN {OPEN}",
]
ON_TASK_DELETE = (f"{_INS} SELECT OLD.queue, {key('c')}, -{one('OLD.state', 'queued')}, -{one('OLD.state', 'active')} "
                  f"FROM cases c WHERE c.id = OLD.case_id AND OLD.state IN {OPEN}")
# A case deleted: its open tasks are cancelled first (counted down while the case row is there);
# the cascade then deletes tasks that count for nothing.
ON_CASE_DELETE = f"UPDATE tasks SET state = 'cancelled' WHERE case_id = OLD.id AND state IN {OPEN}"
ON_CASE_TEAM = [
    f"{_INS} SELECT t.queue, {key('OLD')}, -SUM({one('t.state', 'queued')}), -SUM({one('t.state', 'active')}) "
    f"FROM tasks t WHERE t.case_id = OLD.id AND t.state IN {OPEN} AND {key('OLD')} <> {key('NEW')} GROUP BY t.queue",
    f"{_INS} SELECT t.queue, {key('NEW')}, SUM({one('t.state', 'queued')}), SUM({one('t.state', 'active')}) "
    f"FROM tasks t WHERE t.case_id = NEW.id AND t.state IN {OPEN} AND {key('OLD')} <> {key('NEW')} GROUP BY t.queue",
]

TRIGGERS = {  # name: (timing and event, table, statements)
    "queue_counts_task_insert": ("AFTER INSERT", "tasks", [ON_TASK_INSERT]),
    "queue_counts_task_update": ("AFTER UPDATE OF state, queue", "tasks", ON_TASK_UPDATE),
    "queue_counts_task_delete": ("AFTER DELETE", "tasks", [ON_TASK_DELETE]),
    "queue_counts_case_delete": ("BEFORE DELETE", "cases", [ON_CASE_DELETE]),
    "queue_counts_case_team": ("AFTER UPDATE OF team, restricted", "cases", ON_CASE_TEAM),
}


# PostgreSQL: the task triggers run once per statement over its transition tables (a bulk UPDATE of
# 20,000 tasks by an escalation appends a few aggregated deltas, not 20,000 rows by 20,000 calls).
_CHANGED = "FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.state <> n.state OR o.queue <> n.queue)"
_PG_DELTA = (f"{_INS} SELECT d.queue, {key('c')}, SUM(d.dq), SUM(d.da) FROM ({{rows}}) d "
             "JOIN cases c ON c.id = d.case_id GROUP BY d.queue, 2 HAVING SUM(d.dq) <> 0 OR SUM(d.da) <> 0")
PG_STATEMENT_TRIGGERS = {  # name: (event, transition tables, rows: queue, case_id, dq, da)
    "queue_counts_task_insert": ("INSERT", "NEW TABLE AS new_rows",
                                 f"SELECT queue, case_id, {one('state', 'queued')} AS dq, "
                                 f"{one('state', 'active')} AS da FROM new_rows WHERE state IN {OPEN}"),
    "queue_counts_task_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                                 f"SELECT o.queue, o.case_id, -{one('o.state', 'queued')} AS dq, "
                                 f"-{one('o.state', 'active')} AS da {_CHANGED} AND o.state IN {OPEN} UNION ALL "
                                 f"SELECT n.queue, n.case_id, {one('n.state', 'queued')}, {one('n.state', 'active')} "
                                 f"{_CHANGED} AND n.state IN {OPEN}"),
    "queue_counts_task_delete": ("DELETE", "OLD TABLE AS old_rows",
                                 f"SELECT queue, case_id, -{one('state', 'queued')} AS dq, "
                                 f"-{one('state', 'active')} AS da FROM old_rows WHERE state IN {OPEN}"),
}


def _create_triggers(dialect: str) -> None:
    for name, (when, table, statements) in TRIGGERS.items():
        body = ";\n".join(statements) + ";"
        if dialect == "sqlite":
            op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW BEGIN\n{body}\nEND")
        elif name in PG_STATEMENT_TRIGGERS:
            event, tables, rows = PG_STATEMENT_TRIGGERS[name]
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
                       f"{_PG_DELTA.format(rows=rows)};\nRETURN NULL;\nEND $$")
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {tables} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()")
        else:
            result = "OLD" if "DELETE" in when else "NEW"
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\n"
                       f"RETURN {result};\nEND $$")
            op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")


def upgrade() -> None:
    op.create_table(
        "queue_counts",
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("team_key", sa.String(100), nullable=False),
        sa.Column("queued", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("queue", "team_key", name="pk_queue_counts"),
    )
    op.create_table(
        "queue_count_deltas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("team_key", sa.String(100), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_queue_count_deltas"),
    )
    op.execute(f"INSERT INTO queue_counts (queue, team_key, queued, active) "
               f"SELECT t.queue, {key('c')}, SUM({one('t.state', 'queued')}), SUM({one('t.state', 'active')}) "
               f"FROM tasks t JOIN cases c ON c.id = t.case_id WHERE t.state IN {OPEN} GROUP BY t.queue, {key('c')}")
    _create_triggers(op.get_context().dialect.name)
    op.create_index("ix_tasks_oldest", "tasks", ["queue", "created_at"],
                    sqlite_where=sa.text("state = 'queued'"), postgresql_where=sa.text("state = 'queued'"))
    op.create_index("ix_sla_clocks_warn_at", "sla_clocks", ["warn_at"],
                    sqlite_where=sa.text("state = 'running'"), postgresql_where=sa.text("state = 'running'"))
    fired = sa.text("(warned_at IS NOT NULL OR breached_at IS NOT NULL) AND state <> 'stopped'")
    op.create_index("ix_sla_clocks_fired", "sla_clocks", ["case_id"], sqlite_where=fired, postgresql_where=fired)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.execute(sa.text(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first() is not None:
        # a store analysed before has statistics for the old indexes only: with none for the new ones,
        # SQLite took ix_tasks_oldest for get-next's ORDER BY and sorted a whole queue per call
        op.execute("ANALYZE tasks")
        op.execute("ANALYZE sla_clocks")


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_fired", "sla_clocks")
    op.drop_index("ix_sla_clocks_warn_at", "sla_clocks")
    op.drop_index("ix_tasks_oldest", "tasks")
    dialect = op.get_context().dialect.name
    for name, (_, table, _) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("queue_count_deltas")
    op.drop_table("queue_counts")
