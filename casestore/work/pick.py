"""The SQL of get-next, written once per shape and reused: a call is two statements.

1. ``GUARD``: the agent's active-task count (the cap), and the stamp of the stored definitions (is
   the queue index still good?).  PostgreSQL takes a per-agent advisory lock first, so two calls of
   one agent at once cannot both pass the cap at cap - 1 (SQLite's writer lock does that already).
2. ``claim_best``: the head of each queue (one indexed ``LIMIT 1`` per queue on ``ix_tasks_pick``),
   the best of those heads, and its claim, in one statement:

   * PostgreSQL: a ``LATERAL`` subquery per queue read ``FOR UPDATE OF t SKIP LOCKED`` (rows another
     caller is looking at are skipped, never waited for), the best head, ``UPDATE ... FROM best
     ... RETURNING``, and in the same statement (data-modifying CTEs) the ``task.claimed`` audit
     event and the case's reference: one round trip where there were three (profiling ``casework
     serve`` under the open-loop benchmark showed get-next waiting on round trips, not on the
     database's work);
   * SQLite: ``UNION ALL`` of the per-queue heads inside ``UPDATE ... WHERE id = (best)``, under the
     writer lock ``BEGIN IMMEDIATE`` holds, returning the case's reference too; then the audit
     event.  No round trips to save, but every statement gives up the GIL and must win it back
     while this transaction holds the writer lock that every other get-next waits for.

   Both guard the update with ``state = 'queued'``.

``casework serve`` runs SQLite's statements on the driver's cursor (``claim_best_sqlite``, below):
the same SQL, without SQLAlchemy's execution layer and ORM load per call.

Why text and not the ORM's statement builders: building eight selects per call cost more Python
time than the database spent answering them (~4 ms against ~0.2 ms on a busy 2-core machine), and a
round trip per queue added more.  The statements are cached per (dialect, queue count, visibility),
so each is compiled once per process.  Literals such as ``state = 'queued'`` stay literals so that
both databases match the partial indexes (a bound parameter would hide them from SQLite, and from
PostgreSQL's generic plans).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import BindParameter, Integer, String, TextualSelect, bindparam, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from casestore import audit
from casestore.db import DriverQuery, json_dumps
from casestore.models import UTCDateTime, utcnow
from casestore.work.actor import Actor
from casestore.work.models import WorkTask
from casestore.work.queue_index import QueueInfo, Stamp

CAP_LOCK_NAMESPACE = 0x6377_7170  # "cwqp": pg_advisory_xact_lock(namespace, hashtext(agent))
_DEFS = "(SELECT count(*) FROM case_type_versions), (SELECT max(loaded_at) FROM case_type_versions)"
_HELD = "(SELECT count(*) FROM tasks WHERE state = 'active' AND assignee = :name)"


@cache
def _guard(dialect: str) -> TextualSelect:
    lock = "pg_advisory_xact_lock(:ns, hashtext(:name)), " if dialect == "postgresql" else "0, "
    return text(f"SELECT {lock}{_HELD}, {_DEFS}").columns(
        column("locked"), column("held", Integer()), column("defs", Integer()), column("latest", UTCDateTime()))


def guard(session: Session, actor: Actor) -> tuple[int, Stamp]:
    """(tasks ``actor`` holds, the definitions' stamp); takes the per-agent lock on PostgreSQL."""
    dialect = session.get_bind().dialect.name
    row = session.execute(_guard(dialect), {"ns": CAP_LOCK_NAMESPACE, "name": actor.name}).one()
    return int(row.held), (int(row.defs), row.latest)


_VISIBLE = "(c.team IN :teams OR (c.team IS NULL AND c.restricted = false))"
_ORDER = "t.urgency DESC, t.due_at, t.id"
_CLAIM = "state = 'active', assignee = :actor, lease_version = tasks.lease_version + 1"
_RETURNING = "RETURNING " + ", ".join(f"tasks.{c.name}" for c in WorkTask.__table__.c)


def _head(queue: str, visible: bool, *, lock: str = "", hint: str = "") -> str:
    join = " JOIN cases c ON c.id = t.case_id" if visible else ""
    where = f" AND {_VISIBLE}" if visible else ""
    return (f"SELECT t.id, t.urgency, t.due_at FROM tasks t{hint}{join} WHERE t.queue = {queue} AND t.state = 'queued'"
            f"{where} ORDER BY {_ORDER} LIMIT 1{lock}")


def _datetimes(n: int) -> list[BindParameter[Any]]:
    return [bindparam(f"e{i}", type_=UTCDateTime()) for i in range(n)]


_AUDIT = ("INSERT INTO audit_events (at, actor, action, case_id, item_id, reason, details) "
          "SELECT :at, :actor, 'task.claimed', claimed.case_id, NULL, '', jsonb_build_object("
          "'task_id', claimed.id, 'task', claimed.name, 'queue', claimed.queue, 'how', 'get_next', "
          "'lease_version', claimed.lease_version, 'lease_expires_at', best.expires_text) "
          "FROM claimed JOIN best ON best.id = claimed.id")


@cache
def _claim_pg(n: int, visible: bool) -> ExecutableReturnsRows:
    values = ", ".join(f"(:q{i}, :e{i}, :x{i})" for i in range(n))
    head = _head("q.name", visible, lock=" FOR UPDATE OF t SKIP LOCKED")
    sql = (f"WITH q(name, expires, expires_text) AS (VALUES {values}), "
           f"best AS (SELECT h.id, q.expires, q.expires_text FROM q CROSS JOIN LATERAL ({head}) h "
           f"ORDER BY h.urgency DESC, h.due_at, h.id LIMIT 1), "
           f"claimed AS (UPDATE tasks SET {_CLAIM}, lease_expires_at = best.expires FROM best "
           f"WHERE tasks.id = best.id AND tasks.state = 'queued' {_RETURNING}), "
           f"logged AS ({_AUDIT}) "
           "SELECT claimed.*, c.ref AS case_ref, c.case_type AS case_type_name "
           "FROM claimed JOIN cases c ON c.id = claimed.case_id")
    params = [*_datetimes(n), bindparam("at", type_=UTCDateTime())]
    params += [bindparam(f"x{i}", type_=String()) for i in range(n)]
    if visible:
        params.append(bindparam("teams", expanding=True))
    returning = text(sql).bindparams(*params).columns(*WorkTask.__table__.c, column("case_ref", String()),
                                                      column("case_type_name", String()))
    return (select(WorkTask, returning.selected_columns.case_ref, returning.selected_columns.case_type_name)
            .from_statement(returning).execution_options(populate_existing=True))


def _claim_sqlite_sql(n: int, visible: bool) -> str:
    # INDEXED BY: SQLite's planner took ix_tasks_oldest (queue, created_at) for this and sorted the
    # whole queue per call (measured: 59 get-next in 10 minutes at a million tasks)
    heads = " UNION ALL ".join(f"SELECT * FROM ({_head(f':q{i}', visible, hint=' INDEXED BY ix_tasks_pick')})"
                               for i in range(n))
    expires = " ".join(f"WHEN :q{i} THEN :e{i}" for i in range(n))
    # the case's reference and type come back with the claim (subqueries in RETURNING): one
    # statement fewer while this transaction holds the writer lock
    return (f"UPDATE tasks SET {_CLAIM}, lease_expires_at = CASE queue {expires} END "
            f"WHERE id = (SELECT id FROM ({heads}) ORDER BY urgency DESC, due_at, id LIMIT 1) "
            f"AND state = 'queued' {_RETURNING}, (SELECT c.ref FROM cases c WHERE c.id = tasks.case_id) AS case_ref, "
            "(SELECT c.case_type FROM cases c WHERE c.id = tasks.case_id) AS case_type_name")


@cache
def _claim_sqlite(n: int, visible: bool) -> ExecutableReturnsRows:
    params = _datetimes(n)
    if visible:
        params.append(bindparam("teams", expanding=True))
    returning = text(_claim_sqlite_sql(n, visible)).bindparams(*params).columns(
        *WorkTask.__table__.c, column("case_ref", String()), column("case_type_name", String()))
    return (select(WorkTask, returning.selected_columns.case_ref, returning.selected_columns.case_type_name)
            .from_statement(returning).execution_options(populate_existing=True))


class TaskRow(NamedTuple):
    """A claimed task's columns as read (SQLite's driver path): what a view of it needs, without the
    ORM's instrumentation of a ``WorkTask`` (a test keeps the fields those of ``tasks``)."""

    id: int
    case_id: int
    stage: str
    name: str
    iteration: int
    state: str
    queue: str
    urgency: int
    due_at: datetime
    created_at: datetime
    assignee: str | None
    lease_expires_at: datetime | None
    lease_version: int
    checklist: dict[str, Any]
    completion_code: str | None
    completed_at: datetime | None
    completed_by: str | None


@dataclass(frozen=True)
class ClaimedRow:
    """``Claimed`` as SQLite's driver path gives it: the task's columns, not an ORM object."""

    task: TaskRow
    case_ref: str
    case_type: str


@dataclass(frozen=True)
class Claimed:
    """A task get-next claimed, with its case's reference and type (what a view of it shows)."""

    task: WorkTask
    case_ref: str
    case_type: str


def claim_best(session: Session, *, queues: list[QueueInfo], actor: Actor, visible_teams: tuple[str, ...] | None,
               now: datetime) -> Claimed | None:
    """Claim the best queued task of ``queues`` for ``actor`` (only of cases of ``visible_teams``
    and unrestricted cases of no team, unless None: every case), with its ``task.claimed`` audit
    event; None when there is none."""
    visible = visible_teams is not None
    pg = session.get_bind().dialect.name == "postgresql"
    stmt = (_claim_pg if pg else _claim_sqlite)(len(queues), visible)
    params: dict[str, object] = {"actor": actor.name}
    for i, queue in enumerate(queues):
        params[f"q{i}"] = queue.name
        params[f"e{i}"] = expires = now + queue.lease
        if pg:
            params[f"x{i}"] = expires.isoformat()
    if visible:
        params["teams"] = list(visible_teams or ())
    if pg:
        params["at"] = utcnow()
    row = session.execute(stmt, params).first()
    if row is None:
        return None
    task, ref, case_type = row[0], row[1], row[2]
    if not pg:
        audit.record_many(session, [{
            "actor": actor.name, "action": "task.claimed", "case_id": task.case_id,
            "details": {"task_id": task.id, "task": task.name, "queue": task.queue, "how": "get_next",
                        "lease_version": task.lease_version, "lease_expires_at": task.lease_expires_at}}])
    return Claimed(task, ref, case_type)


# -- PostgreSQL: get-next as one statement (migration 0016's casework_get_next) ---------------------

_TASK_KEYS = tuple(c.key for c in WorkTask.__table__.c)
_FN_COLUMNS = ", ".join(f"(r.task).{c.name}" for c in WorkTask.__table__.c)


@cache
def _get_next_fn() -> TextualSelect:
    sql = (f"SELECT r.outcome, r.held, {_FN_COLUMNS}, r.case_ref, r.case_type_name FROM casework_get_next("
           ":actor, :ns, :cap, :defs, :latest, :queues, :expires, :expires_text, :teams, :at) r")
    returning = text(sql).bindparams(
        bindparam("latest", type_=UTCDateTime()), bindparam("at", type_=UTCDateTime()),
        bindparam("queues", type_=ARRAY(String())), bindparam("expires", type_=ARRAY(UTCDateTime())),
        bindparam("expires_text", type_=ARRAY(String())), bindparam("teams", type_=ARRAY(String())),
    ).columns(column("outcome", String()), column("held", Integer()), *WorkTask.__table__.c,
              column("case_ref", String()), column("case_type_name", String()))
    return returning  # a Core statement: the claimed task is built from its columns (no ORM load)


@dataclass(frozen=True)
class NextOutcome:
    """What ``casework_get_next`` did: ``stale`` (the queue index is older than the stored
    definitions: nothing done), ``cap`` (``held`` reached the cap: nothing done), ``none`` or
    ``claimed`` (``claimed`` set: a detached ``WorkTask``, or the task's columns on the driver path)."""

    outcome: str
    held: int
    claimed: Claimed | ClaimedRow | None


def _next_params(*, queues: list[QueueInfo], stamp: Stamp, actor: Actor, visible_teams: tuple[str, ...] | None,
                 now: datetime, max_active: int) -> dict[str, object]:
    expires = [now + q.lease for q in queues]
    return {"actor": actor.name, "ns": CAP_LOCK_NAMESPACE, "cap": max_active, "defs": stamp[0], "latest": stamp[1],
            "queues": [q.name for q in queues], "expires": expires, "expires_text": [e.isoformat() for e in expires],
            "teams": list(visible_teams) if visible_teams is not None else None, "at": utcnow()}


def get_next_in_one_statement(session: Session, *, queues: list[QueueInfo], stamp: Stamp, actor: Actor,
                              visible_teams: tuple[str, ...] | None, now: datetime,
                              max_active: int) -> NextOutcome:
    """get-next on PostgreSQL as one call of ``casework_get_next`` (the guard, the claim and its
    audit event in the function's own transaction): meant for an autocommit session, so that the
    per-agent lock and the claimed row's lock are held for the database's work only."""
    params = _next_params(queues=queues, stamp=stamp, actor=actor, visible_teams=visible_teams, now=now,
                          max_active=max_active)
    row = session.execute(_get_next_fn(), params).one()
    claimed = None
    if row.outcome == "claimed":  # a detached WorkTask, for reading (this statement committed it already)
        values = row._mapping
        task = WorkTask(**{key: values[key] for key in _TASK_KEYS})
        claimed = Claimed(task, row.case_ref, row.case_type_name)
    return NextOutcome(row.outcome, int(row.held or 0), claimed)


_GET_NEXT_FN = DriverQuery(_get_next_fn())


def get_next_on(cursor: Any, dialect: Dialect, *, queues: list[QueueInfo], stamp: Stamp, actor: Actor,
                visible_teams: tuple[str, ...] | None, now: datetime, max_active: int) -> NextOutcome:
    """``get_next_in_one_statement`` on a driver cursor in autocommit (``casestore.db.driver_cursor``):
    the same statement and parameters, run by ``DriverQuery`` (no ``Session``, no SQLAlchemy
    execution layer; profiling `casework serve` flat out on PostgreSQL showed that layer as a large
    part of a claim's server CPU).  The claimed task comes back as its columns (``TaskRow``)."""
    params = _next_params(queues=queues, stamp=stamp, actor=actor, visible_teams=visible_teams, now=now,
                          max_active=max_active)
    row = _GET_NEXT_FN.first(cursor, dialect, params)
    assert row is not None  # the function returns one row, always
    claimed = None
    if row.outcome == "claimed":
        claimed = ClaimedRow(TaskRow(*row[2:-2]), row.case_ref, row.case_type_name)
    return NextOutcome(row.outcome, int(row.held or 0), claimed)


# -- SQLite: get-next through the driver (casestore.db.sqlite_immediate) ----------------------------
#
# The same statements as ``claim_best`` on SQLite, run on a ``sqlite3`` cursor: no SQLAlchemy
# statement execution, result objects or ORM load per call.  Profiling `casework serve` at 150
# get-next/s showed that layer as most of the claim's CPU, spent while the claim holds the writer
# lock every other get-next waits for.  Values are converted by SQLAlchemy's own type processors
# for the engine's dialect (so what is written and read is what the ORM path writes and reads).

_GUARD_SQLITE = f"SELECT {_HELD}, {_DEFS}"
_AUDIT_SQLITE = ("INSERT INTO audit_events (at, actor, action, case_id, item_id, reason, details) "
                 "VALUES (:at, :actor, 'task.claimed', :case_id, NULL, '', :details)")
_TASK_COLUMNS = tuple(WorkTask.__table__.c)
_processors: WeakKeyDictionary[Dialect, tuple[Any, Any, list[Any]]] = WeakKeyDictionary()


def _converters(dialect: Dialect) -> tuple[Any, Any, list[Any]]:
    """(datetime -> stored value, stored value -> datetime, one reader per task column) on ``dialect``."""
    found = _processors.get(dialect)
    if found is None:
        stamp = UTCDateTime().dialect_impl(dialect)
        found = (stamp.bind_processor(dialect), stamp.result_processor(dialect, None),
                 [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in _TASK_COLUMNS])
        _processors[dialect] = found
    return found


def guard_sqlite(cursor: Any, actor: Actor, dialect: Dialect) -> tuple[int, Stamp]:
    """``guard`` on a driver cursor: (tasks ``actor`` holds, the definitions' stamp)."""
    _, read, _ = _converters(dialect)
    held, defs, latest = cursor.execute(_GUARD_SQLITE, {"name": actor.name}).fetchone()
    return int(held), (int(defs), read(latest) if read is not None else latest)


@cache
def _claim_sqlite_driver(n: int, teams: int | None) -> str:
    sql = _claim_sqlite_sql(n, teams is not None)
    if teams is not None:  # the driver has no expanding parameters: one named parameter per team
        sql = sql.replace(":teams", "(" + ", ".join(f":t{j}" for j in range(teams)) + ")")
    return sql


def claim_best_sqlite(cursor: Any, *, dialect: Dialect, queues: list[QueueInfo], actor: Actor,
                      visible_teams: tuple[str, ...] | None, now: datetime) -> ClaimedRow | None:
    """``claim_best`` on SQLite on a driver cursor inside ``BEGIN IMMEDIATE``: the claim (one
    statement, returning the case's reference and type) and its ``task.claimed`` event."""
    write, _, readers = _converters(dialect)
    params: dict[str, object] = {"actor": actor.name}
    for i, queue in enumerate(queues):
        params[f"q{i}"] = queue.name
        params[f"e{i}"] = write(now + queue.lease) if write is not None else now + queue.lease
    if visible_teams is not None:
        for j, team in enumerate(visible_teams):
            params[f"t{j}"] = team
    sql = _claim_sqlite_driver(len(queues), None if visible_teams is None else len(visible_teams))
    row = cursor.execute(sql, params).fetchone()
    if row is None:
        return None
    task = TaskRow(*[read(v) if read is not None else v for read, v in zip(readers, row[:-2], strict=True)])
    cursor.execute(_AUDIT_SQLITE, {
        "at": write(utcnow()) if write is not None else utcnow(), "actor": actor.name, "case_id": task.case_id,
        "details": json_dumps({"task_id": task.id, "task": task.name, "queue": task.queue, "how": "get_next",
                               "lease_version": task.lease_version, "lease_expires_at": task.lease_expires_at})})
    return ClaimedRow(task, row[-2], row[-1])
