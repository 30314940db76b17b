"""Queue counts without scanning the tasks: what triggers keep (migration 0012), read and folded.

Every change of a task's state or queue appends a delta (``queue_count_deltas``) in the same
transaction; ``counts`` adds the folded base (``queue_counts``, a row per queue and case team) and
the deltas not folded yet, so it is exact at the reader's snapshot whatever commits around it.
``fold`` moves deltas into the base (the clock loop calls it every tick); it changes no count.

Appending rather than updating a counter row keeps get-next's claims from queueing behind one
another on a hot row (and from deadlocking over two rows); the price is a small table to fold.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, TextClause, bindparam, text
from sqlalchemy.orm import Session

from casestore.errors import InvalidInput

log = logging.getLogger(__name__)

FOLD_LOCK = 0x6377_7163  # "cwqc": one folder at a time (pg_try_advisory_xact_lock)
RESTRICTED_KEY = "~restricted"  # a restricted case of no team: supervisors and admins only


@dataclass(frozen=True)
class Counts:
    queued: int
    active: int


@cache
def _read(visible: bool) -> TextClause:
    where = " AND (team_key IN :teams OR team_key = '')" if visible else ""
    sql = ("SELECT queue, COALESCE(SUM(queued), 0), COALESCE(SUM(active), 0) FROM ("
           "SELECT queue, team_key, queued, active FROM queue_counts UNION ALL "
           "SELECT queue, team_key, queued, active FROM queue_count_deltas) x "
           f"WHERE queue IN :queues{where} GROUP BY queue")
    params: list[BindParameter[Any]] = [bindparam("queues", expanding=True)]
    if visible:
        params.append(bindparam("teams", expanding=True))
    return text(sql).bindparams(*params)


def counts(session: Session, *, queues: Collection[str], teams: Collection[str] | None) -> dict[str, Counts]:
    """Waiting and active tasks of each of ``queues`` (absent: none), over the cases of ``teams``
    and unrestricted cases of no team; every case when ``teams`` is None."""
    if not queues:
        return {}
    params: dict[str, object] = {"queues": list(queues)}
    if teams is not None:
        params["teams"] = list(teams) or [""]
    return {row[0]: Counts(int(row[1]), int(row[2]))
            for row in session.execute(_read(teams is not None), params)}


_FOLD_PG = text(
    "WITH moved AS (DELETE FROM queue_count_deltas WHERE id IN (SELECT id FROM queue_count_deltas ORDER BY id "
    "LIMIT :limit) RETURNING queue, team_key, queued, active), "
    "base AS (INSERT INTO queue_counts (queue, team_key, queued, active) "
    "SELECT queue, team_key, SUM(queued), SUM(active) FROM moved GROUP BY queue, team_key "
    "ON CONFLICT (queue, team_key) DO UPDATE SET queued = queue_counts.queued + excluded.queued, "
    "active = queue_counts.active + excluded.active) "
    "SELECT COUNT(*) FROM moved")
_FOLD_SQLITE = [
    text("INSERT INTO queue_counts (queue, team_key, queued, active) "
         "SELECT queue, team_key, SUM(queued), SUM(active) FROM queue_count_deltas WHERE id <= :upto "
         "GROUP BY queue, team_key "
         "ON CONFLICT (queue, team_key) DO UPDATE SET queued = queue_counts.queued + excluded.queued, "
         "active = queue_counts.active + excluded.active"),
    text("DELETE FROM queue_count_deltas WHERE id <= :upto"),
]


def fold(session: Session, *, limit: int = 50_000) -> int:
    """Fold up to ``limit`` deltas into the base counts; how many.  On PostgreSQL one folder runs
    at a time (another caller gets 0 at once); on SQLite the writer lock orders them.  Flushes,
    the caller commits."""
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
    if session.get_bind().dialect.name == "postgresql":
        if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FOLD_LOCK}).scalar():
            return 0
        moved = session.execute(_FOLD_PG, {"limit": limit}).scalar()
    else:
        upto = session.execute(text("SELECT id FROM queue_count_deltas ORDER BY id LIMIT 1 OFFSET :n"),
                               {"n": limit - 1}).scalar()
        if upto is None:
            upto = session.execute(text("SELECT MAX(id) FROM queue_count_deltas")).scalar()
        if upto is None:
            return 0
        moved = session.execute(text("SELECT COUNT(*) FROM queue_count_deltas WHERE id <= :upto"),
                                {"upto": upto}).scalar() or 0
        for stmt in _FOLD_SQLITE:
            session.execute(stmt, {"upto": upto})
    if moved:
        log.debug("queue counts: %d delta(s) folded", moved)
    return int(moved or 0)
