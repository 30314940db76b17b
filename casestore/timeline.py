"""A case's timeline: documents that came in, notes and audit events, newest first, by pages.

Each page is three small keyset queries (items, notes, audit events of the case, each from the
cursor on, ``limit + 1`` rows) merged in time order, so a page costs the same however long the
case's history is.  The cursor is opaque to callers: ``next_cursor`` of one page asks for the next.

Audit events that only repeat another entry (``item.filed`` beside its document, ``note.added``
beside its note) are left out of the events; the entries they repeat carry who and why.
Outbound documents join when the outbound domain exists (they are not stored yet).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from casestore.errors import InvalidInput
from casestore.models import AuditEvent, Document, Item, Note

Kind = Literal["document", "note", "event"]
KINDS: tuple[Kind, ...] = ("document", "note", "event")
_RANK: dict[str, int] = {"document": 0, "note": 1, "event": 2}  # ties at the same instant: this order, reversed
REPEATED_ACTIONS = ("item.filed", "note.added")
MAX_LIMIT = 200


class TimelineDocument(BaseModel):
    document_id: int
    part_index: int
    kind: str
    title: str
    filename: str | None
    content_type: str | None


class TimelineEntry(BaseModel):
    kind: Kind
    at: datetime
    key: str  # the entry's id within its kind (item id, note id, event id)
    actor: str = ""
    title: str = ""
    body: str = ""
    channel: str | None = None
    doc_type: str | None = None
    action: str | None = None
    reason: str = ""
    details: dict[str, Any] = {}
    documents: list[TimelineDocument] = []
    direction: str = "in"  # documents: "out" for a message we sent (casestore.outbound)
    delivery_state: str | None = None  # documents going out: queued, sent, failed, to_print, posted...
    dated_at: datetime | None = None  # a document's own date (email Date, scan capture time); `at` is receipt
    dated_as: str = ""  # "sent" or "captured"


class TimelinePage(BaseModel):
    entries: list[TimelineEntry]
    next_cursor: str | None


def _encode(entry: TimelineEntry) -> str:
    raw = json.dumps([entry.at.isoformat(), entry.kind, entry.key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int, str]:
    try:
        at, kind, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), _RANK[kind], str(key)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidInput("the timeline cursor is not one this server gave out; start from the first page") from exc


def _after(time_col: Any, id_col: Any, rank: int, cursor: tuple[datetime, int, str] | None,
           key_of: Any = str) -> Any:
    """Rows that come after the cursor in newest-first order (time desc, rank desc, id desc)."""
    if cursor is None:
        return True
    at, c_rank, c_key = cursor
    if rank < c_rank:
        return time_col <= at
    if rank > c_rank:
        return time_col < at
    return or_(time_col < at, and_(time_col == at, id_col < key_of(c_key)))


def case_timeline(session: Session, *, case_id: int, kinds: Sequence[str] = KINDS, cursor: str | None = None,
                  limit: int = 50) -> TimelinePage:
    """One page of the case's timeline, newest first; ``kinds`` picks entry kinds (all by default)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise InvalidInput(f"unknown timeline kind {sorted(unknown)[0]!r}: use {', '.join(KINDS)}")
    after = _decode(cursor) if cursor else None
    entries: list[TimelineEntry] = []
    if "document" in kinds:
        entries += _documents(session, case_id, after, limit + 1)
    if "note" in kinds:
        rows = session.scalars(
            select(Note).where(Note.case_id == case_id, _after(Note.created_at, Note.id, _RANK["note"], after, int))
            .order_by(Note.created_at.desc(), Note.id.desc()).limit(limit + 1))
        entries += [TimelineEntry(kind="note", at=n.created_at, key=str(n.id), actor=n.author, body=n.body)
                    for n in rows]
    if "event" in kinds:
        rows_e = session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action.not_in(REPEATED_ACTIONS),
                                     _after(AuditEvent.at, AuditEvent.id, _RANK["event"], after, int))
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit + 1))
        entries += [TimelineEntry(kind="event", at=e.at, key=str(e.id), actor=e.actor, action=e.action,
                                  reason=e.reason, details=dict(e.details or {})) for e in rows_e]
    entries.sort(key=lambda e: (e.at, _RANK[e.kind], _sort_key(e)), reverse=True)
    page = entries[:limit]
    return TimelinePage(entries=page, next_cursor=_encode(page[-1]) if len(entries) > limit else None)


def _sort_key(entry: TimelineEntry) -> tuple[int, str]:
    return (int(entry.key), "") if entry.kind != "document" else (0, entry.key)


def _documents(session: Session, case_id: int, after: tuple[datetime, int, str] | None,
               limit: int) -> list[TimelineEntry]:
    items = list(session.scalars(
        select(Item).where(Item.case_id == case_id,
                           _after(Item.received_at, Item.item_id, _RANK["document"], after))
        .order_by(Item.received_at.desc(), Item.item_id.desc()).limit(limit)))
    if not items:
        return []
    parts: dict[str, list[TimelineDocument]] = {}
    for d in session.execute(
        select(Document.id, Document.item_id, Document.part_index, Document.kind, Document.title,
               Document.filename, Document.content_type)
        .where(Document.item_id.in_([i.item_id for i in items])).order_by(Document.item_id, Document.part_index)
    ):
        parts.setdefault(d.item_id, []).append(TimelineDocument(
            document_id=d.id, part_index=d.part_index, kind=d.kind, title=d.title or "", filename=d.filename,
            content_type=d.content_type))
    return [
        TimelineEntry(kind="document", at=i.received_at, key=i.item_id, actor=i.sender or "",
                      title=i.subject or i.filename or "(no subject)", channel=i.channel, doc_type=i.doc_type,
                      reason=str((i.decision or {}).get("reason", "")), documents=parts.get(i.item_id, []),
                      direction=i.direction or "in", delivery_state=i.delivery_state, **_own_date(i.meta or {}))
        for i in items
    ]


def _own_date(meta: dict[str, Any]) -> dict[str, Any]:
    for key, label in (("sent_at", "sent"), ("captured_at", "captured")):
        value = meta.get(key)
        if isinstance(value, str):
            try:
                return {"dated_at": datetime.fromisoformat(value), "dated_as": label}
            except ValueError:
                continue
    return {}
