"""The audit log: append-only events about cases and items (the database refuses edits)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import ColumnElement, Integer, Select, String, Table, func, insert, literal, literal_column, null
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from casestore.db import json_dumps
from casestore.models import AuditEvent, Case, UTCDateTime, utcnow

log = logging.getLogger(__name__)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    reason: str = "",
    case: Case | None = None,
    item_id: str | None = None,
    details: dict[str, Any] | None = None,
    case_id: int | None = None,
    at: datetime | None = None,
    flush: bool = True,
) -> AuditEvent:
    """Append one audit event (flushed, so it has its id, unless ``flush`` is False: then it is
    written with the session's next flush, together with the other rows pending).  ``case_id``
    names the case by id when the caller has no ``Case`` loaded (work services that touch a task,
    not its case).  ``at`` is when it happened (now by default)."""
    if case is not None and case.id is None:
        session.flush()  # a case opened in this transaction gets its id
    event = AuditEvent(
        at=at or utcnow(),
        actor=actor,
        action=action,
        reason=reason,
        case_id=case.id if case is not None else case_id,
        item_id=item_id,
        details=dict(details or {}),
    )
    session.add(event)
    if flush:
        session.flush()
    log.debug("audit %s by %s case=%s item=%s", action, actor, case.ref if case else case_id, item_id)
    return event


_TABLE = cast(Table, AuditEvent.__table__)
_COPY_FROM = 50
_COLUMNS = ("at", "actor", "action", "case_id", "item_id", "reason", "details")


class NewEvent(TypedDict, total=False):
    actor: str  # required
    action: str  # required
    case_id: int | None
    item_id: str | None
    reason: str
    details: dict[str, Any]
    at: datetime  # when it happened; now if not given


def record_many(session: Session, events: Sequence[NewEvent]) -> int:
    """Append many audit events at once (the clock loop escalating thousands of clocks in a
    batch); returns how many.  Same rows as ``record`` writes, without ids.

    PostgreSQL, from ``_COPY_FROM`` events: ``COPY`` on the session's connection, inside its
    transaction (5,000 events took ~0.85 s as a pipelined executemany, most of a 1,000-clock
    escalation batch).  Fewer events, and SQLite: one INSERT executemany (COPY costs an extra
    round trip, which a single claim's event would feel).
    """
    if not events:
        return 0
    at = utcnow()
    rows = [(e.get("at") or at, e["actor"], e["action"], e.get("case_id"), e.get("item_id"), e.get("reason", ""),
             dict(e.get("details") or {})) for e in events]
    connection = session.connection()
    if connection.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY audit_events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row[:-1], json_dumps(row[-1])))
        finally:
            cursor.close()
    else:
        session.execute(insert(_TABLE), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])
    log.debug("audit: %d events recorded", len(rows))
    return len(rows)


def record_select(session: Session, *, action: str, at: datetime, rows: Select[Any],
                  case_id: ColumnElement[Any], details: dict[str, Any]) -> int:
    """Append one ``system`` event per row of ``rows`` (a SELECT, e.g. of the tasks an escalation
    moves) with one ``INSERT ... SELECT``: the database builds each event's details (``details``:
    key -> a column of ``rows``' tables, or a plain value the same for every row), so thousands of
    events cost one statement and no JSON encoding in Python.  Returns how many were written.

    Keys are code, never input.  Timestamps in details are ISO 8601 in UTC, as ``json_dumps``
    writes them (to the microsecond on PostgreSQL, the millisecond on SQLite)."""
    pg = session.get_bind().dialect.name == "postgresql"
    pairs: list[Any] = []
    for key, value in details.items():
        if not key.isidentifier():
            raise ValueError(f"audit detail key {key!r} must be an identifier")
        pairs.append(literal_column(f"'{key}'"))
        pairs.append(_json_value(value, pg))
    build = func.jsonb_build_object if pg else func.json_object
    stmt = insert(_TABLE).from_select(
        list(_COLUMNS),
        rows.with_only_columns(literal(at, UTCDateTime()), sql_cast(literal("system"), String),
                               sql_cast(literal(action), String), case_id, null(), sql_cast(literal(""), String),
                               build(*pairs), maintain_column_froms=True))
    return int(session.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount)  # type: ignore[attr-defined]


def _json_value(value: Any, pg: bool) -> Any:
    """A value for the database's JSON object builder: a column as it is (timestamps as ISO text),
    a Python value as a typed parameter (PostgreSQL cannot infer the type of a bare one)."""
    if isinstance(value, ColumnElement):
        if isinstance(value.type, UTCDateTime):
            if pg:
                return func.to_char(func.timezone("UTC", value), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
            return func.strftime("%Y-%m-%dT%H:%M:%f+00:00", value)
        return value
    if value is None:
        return null()
    if isinstance(value, bool):
        return literal(value)
    if isinstance(value, int):
        return sql_cast(literal(value), Integer)
    if isinstance(value, datetime):
        return sql_cast(literal(value.isoformat()), String)
    return sql_cast(literal(str(value)), String)
