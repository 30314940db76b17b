"""An item id or a web-form receipt number typed into search finds that item."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from casestore.item_lookup import find_items, looks_like_item
from casestore.models import Document, Item

WEBFORM = "3f2a9c1e-0000-5000-8000-000000000001"
EMAIL = "3f2a9c1e-0000-5000-8000-000000000002"


def _item(item_id: str, channel: str) -> dict[str, object]:
    return dict(item_id=item_id, idempotency_key=f"k-{item_id}", channel=channel,
                received_at=datetime(2026, 3, 1, tzinfo=UTC), source="", filename=None, blob_sha256=None,
                content_type=None, size=0, meta={}, sender=None, subject="My complaint", outcome="triage",
                case_id=None, doc_type="complaint", decision={}, filed_at=datetime(2026, 3, 1, tzinfo=UTC))


def test_ids_and_receipts(session: Session) -> None:
    session.execute(insert(Item), [_item(WEBFORM, "webform"), _item(EMAIL, "email")])
    session.execute(insert(Document), [dict(item_id=WEBFORM, case_id=None, part_index=0, kind="record", title="",
                                            filename=None, content_type=None, blob_sha256=None, text="", fields={},
                                            error=None, created_at=datetime(2026, 3, 1, tzinfo=UTC))])
    receipt = WEBFORM[:8].upper()  # as the thank-you page shows it
    assert looks_like_item(receipt) and looks_like_item(EMAIL) and not looks_like_item("noise")
    found = find_items(session, text=receipt)
    assert [(hit.item_id, hit.first_document_id is not None, case) for hit, case in found] == [(WEBFORM, True, None)]
    assert [hit.item_id for hit, _ in find_items(session, text=f" {EMAIL.upper()} ")] == [EMAIL]
    assert find_items(session, text="3f2a9c1f") == []
