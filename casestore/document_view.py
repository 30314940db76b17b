"""One document as the viewer shows it: its text and fields, the item it came in with, the item's
other parts (an email's attachments), and the case it is filed in (for the access check)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.errors import NotFound
from casestore.models import Case, Document, Item


class PartSummary(BaseModel):
    document_id: int
    part_index: int
    kind: str
    title: str
    filename: str | None
    content_type: str | None


class DocumentView(BaseModel):
    document_id: int
    item_id: str
    part_index: int
    kind: str
    title: str
    filename: str | None
    content_type: str | None
    blob_sha256: str | None
    text: str
    fields: dict[str, Any]
    error: str | None
    channel: str
    received_at: datetime
    sent_at: str | None = None  # the email's own Date header
    captured_at: str | None = None  # a scan's capture time as the scanner recorded it
    sender: str | None
    subject: str | None
    doc_type: str
    outcome: str
    item_blob_sha256: str | None
    item_filename: str | None
    item_content_type: str | None
    case_ref: str | None
    parts: list[PartSummary]


def document_view(session: Session, *, document_id: int) -> tuple[DocumentView, Case | None]:
    """The document and the case it is filed in (None: triage or noise).  NotFound otherwise.
    The caller decides with the access rule whether the viewer may see it."""
    row = session.execute(
        select(Document, Item, Case).join(Item, Item.item_id == Document.item_id)
        .outerjoin(Case, Case.id == Document.case_id).where(Document.id == document_id)
    ).first()
    if row is None:
        raise NotFound(f"no document {document_id}")
    doc, item, case = row
    parts = [PartSummary(document_id=p.id, part_index=p.part_index, kind=p.kind, title=p.title or "",
                         filename=p.filename, content_type=p.content_type)
             for p in session.execute(
                 select(Document.id, Document.part_index, Document.kind, Document.title, Document.filename,
                        Document.content_type).where(Document.item_id == item.item_id)
                 .order_by(Document.part_index))]
    view = DocumentView(
        document_id=doc.id, item_id=item.item_id, part_index=doc.part_index, kind=doc.kind, title=doc.title or "",
        filename=doc.filename, content_type=doc.content_type, blob_sha256=doc.blob_sha256, text=doc.text or "",
        fields=dict(doc.fields or {}), error=doc.error, channel=item.channel, received_at=item.received_at,
        sent_at=(item.meta or {}).get("sent_at"), captured_at=(item.meta or {}).get("captured_at"),
        sender=item.sender, subject=item.subject, doc_type=item.doc_type, outcome=item.outcome,
        item_blob_sha256=item.blob_sha256, item_filename=item.filename, item_content_type=item.content_type,
        case_ref=case.ref if case is not None else None, parts=parts,
    )
    return view, case
