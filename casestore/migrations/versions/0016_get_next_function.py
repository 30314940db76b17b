"""get-next on PostgreSQL as one function call: ``casework_get_next`` (``casestore.work.pick``).

One get-next used to be BEGIN, the guard (per-agent advisory lock, the agent's active count, the
definitions' stamp), the claim and COMMIT: four round trips, with the claimed row's lock held
while ``casework serve`` got round to sending the next one (under load: the server was busy with
other requests, and each round trip waited to win the GIL back).  This function does all of it
inside the database, called as one statement in autocommit, so the advisory lock and the row
lock are held only for the database's own work.  Each statement of a plpgsql function takes a
fresh snapshot (READ COMMITTED), so the active count read after the advisory lock sees the claims
of the agent's previous call, as the guard in its own statement did.

Outcomes: ``stale`` (the caller's queue index is older than the stored definitions: nothing done,
reload and call again), ``cap`` (the agent holds ``max_active`` tasks: nothing done), ``none``
(no visible queued task in those queues) and ``claimed`` (the task row, after the claim, with its
case's reference and type; the ``task.claimed`` audit event written in the same transaction).

SQLite: nothing (its get-next stays two statements under ``BEGIN IMMEDIATE``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEAD = ("SELECT t.id, t.urgency, t.due_at FROM tasks t{join} WHERE t.queue = q.name AND t.state = 'queued'{where} "
         "ORDER BY t.urgency DESC, t.due_at, t.id LIMIT 1 FOR UPDATE OF t SKIP LOCKED")
_BEST = ("SELECT h.id, q.expires, q.xtext INTO v_id, v_expires, v_text "
         "FROM unnest(p_queues, p_expires, p_expires_text) AS q(name, expires, xtext) "
         "CROSS JOIN LATERAL ({head}) h ORDER BY h.urgency DESC, h.due_at, h.id LIMIT 1;")
# literals (state = 'queued') stay literals: the partial index ix_tasks_pick matches them
_ALL = _BEST.format(head=_HEAD.format(join="", where=""))
_VISIBLE = _BEST.format(head=_HEAD.format(
    join=" JOIN cases c ON c.id = t.case_id",
    where=" AND (c.team = ANY (p_teams) OR (c.team IS NULL AND c.restricted = false))"))

FUNCTION = f"""
CREATE OR REPLACE FUNCTION casework_get_next(
    p_actor text, p_lock_ns integer, p_max_active integer, p_defs bigint, p_latest timestamptz,
    p_queues text[], p_expires timestamptz[], p_expires_text text[], p_teams text[], p_at timestamptz)
RETURNS TABLE (outcome text, held integer, task tasks, case_ref text, case_type_name text)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_defs bigint;
    v_latest timestamptz;
    v_held integer;
    v_id integer;
    v_expires timestamptz;
    v_text text;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_ns, hashtext(p_actor));
    SELECT count(*), max(loaded_at) INTO v_defs, v_latest FROM case_type_versions;
    IF v_defs <> p_defs OR v_latest IS DISTINCT FROM p_latest THEN
        RETURN QUERY SELECT 'stale'::text, NULL::integer, NULL::tasks, NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT count(*) INTO v_held FROM tasks t WHERE t.state = 'active' AND t.assignee = p_actor;
    IF v_held >= p_max_active THEN
        RETURN QUERY SELECT 'cap'::text, v_held, NULL::tasks, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF p_teams IS NULL THEN
        {_ALL}
    ELSE
        {_VISIBLE}
    END IF;
    IF v_id IS NULL THEN
        RETURN QUERY SELECT 'none'::text, v_held, NULL::tasks, NULL::text, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE tasks SET state = 'active', assignee = p_actor, lease_version = tasks.lease_version + 1,
                         lease_expires_at = v_expires
        WHERE tasks.id = v_id AND tasks.state = 'queued'
        RETURNING tasks.*
    ), logged AS (
        INSERT INTO audit_events (at, actor, action, case_id, item_id, reason, details)
        SELECT p_at, p_actor, 'task.claimed', claimed.case_id, NULL, '', jsonb_build_object(
            'task_id', claimed.id, 'task', claimed.name, 'queue', claimed.queue, 'how', 'get_next',
            'lease_version', claimed.lease_version, 'lease_expires_at', v_text)
        FROM claimed
    )
    SELECT 'claimed'::text, v_held, claimed::tasks, c.ref::text, c.case_type::text
    FROM claimed JOIN cases c ON c.id = claimed.case_id;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS casework_get_next(text, integer, integer, bigint, timestamptz, text[], "
                   "timestamptz[], text[], text[], timestamptz)")
