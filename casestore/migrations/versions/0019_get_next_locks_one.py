"""get-next on PostgreSQL locks the task it hands out, not the head of every queue it looks at.

Migration 0016's ``casework_get_next`` found the best task with ``FOR UPDATE SKIP LOCKED`` inside a
``LATERAL`` over the agent's queues: to hand out one task it locked the first free task of each
of them (8 for the benchmark's agents) until its commit.  A row lock is a write: the tuple's
``xmax``, its page dirtied and a WAL record, and under 50 agents flat out the other agents' scans
then skipped those seven rows too (BENCHMARKS.md, issue 10, session 8: 2.4 ms of PostgreSQL CPU a
claim).  Now the heads are read without locks, ``CANDIDATES`` of each queue in the queue's own
order, merged in get-next's order (urgency, then due time, then id), and the function locks them one
at a time with ``SKIP LOCKED``, re-checking that the task is still queued (a row another agent
claimed and committed meanwhile fails the re-check; one it holds is skipped), until one is won.
Only when every candidate was taken does it fall back to 0016's query, which locks its way past
the taken rows; so an agent still gets a task whenever one is free in its queues.

What is handed out is the same as before: the best task, by get-next's order, of those no other
agent holds at the moment of the lock.  Everything else (the per-agent lock, the definitions'
stamp, the cap, the claim, its audit event, the outcomes) is 0016's, unchanged.

SQLite: nothing (its get-next stays under ``BEGIN IMMEDIATE``).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CANDIDATES = 3  # unlocked heads read per queue before falling back to the locking query

_M16 = importlib.import_module("casestore.migrations.versions.0016_get_next_function")

_PEEK = ("SELECT t.id, t.urgency, t.due_at FROM tasks t{join} WHERE t.queue = q.name AND t.state = 'queued'{where} "
         f"ORDER BY t.urgency DESC, t.due_at, t.id LIMIT {CANDIDATES}")
_CANDIDATES = ("SELECT h.id, q.expires, q.xtext "
               "FROM unnest(p_queues, p_expires, p_expires_text) AS q(name, expires, xtext) "
               "CROSS JOIN LATERAL ({peek}) h ORDER BY h.urgency DESC, h.due_at, h.id")
_ALL = _CANDIDATES.format(peek=_PEEK.format(join="", where=""))
_VISIBLE = _CANDIDATES.format(peek=_PEEK.format(
    join=" JOIN cases c ON c.id = t.case_id",
    where=" AND (c.team = ANY (p_teams) OR (c.team IS NULL AND c.restricted = false))"))
_TRY = """
        PERFORM 1 FROM tasks t WHERE t.id = v_try AND t.state = 'queued' FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            v_id := v_try; v_expires := v_try_expires; v_text := v_try_text;
            EXIT;
        END IF;"""

# 0016's function with its choice of the task replaced: candidates first, 0016's query as the fallback
_OLD_CHOICE = f"""    IF p_teams IS NULL THEN
        {_M16._ALL}
    ELSE
        {_M16._VISIBLE}
    END IF;"""
_NEW_CHOICE = f"""    IF p_teams IS NULL THEN
        FOR v_try, v_try_expires, v_try_text IN {_ALL} LOOP{_TRY}
        END LOOP;
    ELSE
        FOR v_try, v_try_expires, v_try_text IN {_VISIBLE} LOOP{_TRY}
        END LOOP;
    END IF;
    IF v_id IS NULL THEN  -- every candidate was taken meanwhile: lock past them, as 0016 did
{_OLD_CHOICE}
    END IF;"""
_OLD_DECLARE = "    v_text text;\n"
_NEW_DECLARE = "    v_text text;\n    v_try integer;\n    v_try_expires timestamptz;\n    v_try_text text;\n"

if _M16.FUNCTION.count(_OLD_CHOICE) != 1 or _M16.FUNCTION.count(_OLD_DECLARE) != 1:
    raise RuntimeError("migration 0019 no longer matches 0016's casework_get_next")
FUNCTION = _M16.FUNCTION.replace(_OLD_CHOICE, _NEW_CHOICE).replace(_OLD_DECLARE, _NEW_DECLARE)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_M16.FUNCTION)
