"""The case timeline: newest first across documents, notes and events, paged by cursor without
losing or repeating an entry (ties at the same instant included), filtered by kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from casestore import cases, customers, notes
from casestore.errors import InvalidInput
from casestore.models import AuditEvent, Document, Item, Note
from casestore.timeline import case_timeline

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _seed(session: Session) -> int:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    case, _ = cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="complaint")
    items = [dict(item_id=f"00000000-0000-0000-0000-{n:012d}", idempotency_key=f"k{n}", channel="email",
                  received_at=T0 + timedelta(minutes=n // 3), source="", filename=None, blob_sha256=None,
                  content_type=None, size=0, meta={}, sender="jane@example.com", subject=f"letter {n}",
                  outcome="attached", case_id=case.id, doc_type="complaint", decision={}, filed_at=T0)
             for n in range(25)]
    session.execute(insert(Item), items)
    session.execute(insert(Document), [dict(item_id=i["item_id"], case_id=case.id, part_index=p, kind="body",
                                            title="", filename=f"part{p}", content_type=None, blob_sha256=None,
                                            text="", fields={}, error=None, created_at=T0)
                                       for i in items for p in range(2)])
    session.execute(insert(Note), [dict(case_id=case.id, author="alice", body=f"note {n}",
                                        created_at=T0 + timedelta(minutes=n // 2)) for n in range(20)])
    session.execute(insert(AuditEvent), [dict(at=T0 + timedelta(minutes=n), actor="sue", action="case.updated",
                                              case_id=case.id, item_id=None, reason=f"event {n}", details={})
                                         for n in range(10)])
    notes.add_note(session, ref=case.ref, author="bob", body="the newest note")  # + a note.added event, left out
    session.flush()
    return case.id


def test_pages_cover_every_entry_once_newest_first(session: Session) -> None:
    case_id = _seed(session)
    seen: list[tuple[str, str]] = []
    times: list[datetime] = []
    cursor = None
    pages = 0
    while True:
        page = case_timeline(session, case_id=case_id, cursor=cursor, limit=7)
        pages += 1
        seen += [(e.kind, e.key) for e in page.entries]
        times += [e.at for e in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25 + 21 + 10 + 1  # items, notes, events, the case import event
    assert times == sorted(times, reverse=True)
    assert pages == 9
    first = case_timeline(session, case_id=case_id, limit=3).entries
    assert first[0].kind == "note" and first[0].body == "the newest note"
    documents = case_timeline(session, case_id=case_id, kinds=["document"], limit=50).entries
    assert len(documents) == 25 and all(len(e.documents) == 2 for e in documents)
    events = case_timeline(session, case_id=case_id, kinds=["event"], limit=50).entries
    assert {e.action for e in events} == {"case.updated", "case.imported"}, "note.added repeats its note"


def test_bad_cursors_and_kinds_are_refused(session: Session) -> None:
    case_id = _seed(session)
    with pytest.raises(InvalidInput, match="cursor"):
        case_timeline(session, case_id=case_id, cursor="not-a-cursor")
    with pytest.raises(InvalidInput, match="kind"):
        case_timeline(session, case_id=case_id, kinds=["letters"])
