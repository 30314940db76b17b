"""Small builders for the case store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from casestore.items import NewDocument, NewItem


def new_item(key: str | None = None, *, message_id: str | None = None, received_at: datetime | None = None,
             **overrides: Any) -> NewItem:
    key = key or f"email:{uuid.uuid4()}"
    values: dict[str, Any] = {
        "item_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "idempotency_key": key,
        "channel": "email",
        "received_at": received_at or datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
        "source": "imap://intake@example.com/INBOX;UID=7",
        "filename": "message.eml",
        "blob_sha256": "a" * 64,
        "content_type": "message/rfc822",
        "size": 2048,
        "metadata": {"message_id": message_id} if message_id else {},
        "sender": "jane@example.com",
        "subject": "My broken boiler",
    }
    values.update(overrides)
    return NewItem(**values)


def documents(n: int = 2) -> list[NewDocument]:
    return [
        NewDocument(
            part_index=i,
            kind="body" if i == 0 else "attachment",
            title="Email body" if i == 0 else f"attachment {i}",
            filename=None if i == 0 else f"scan{i}.pdf",
            content_type="text/plain" if i == 0 else "application/pdf",
            blob_sha256=None if i == 0 else f"{i:064x}",
            text=f"part {i} text about the boiler",
            fields={"page_count": i},
            error=None,
        )
        for i in range(n)
    ]


def decision(reason: str = "case reference in subject", **extra: Any) -> dict[str, Any]:
    return {"reason": reason, "evidence": {"ref": "subject"}, "candidates": [], **extra}
