"""The case folder as a typed read model: the case, its customer, documents, notes and audit trail
(``casestore.cases.case_folder``) and its ``work``.  The same object is served by
``GET /api/v1/cases/{ref}`` and printed by ``casework case show REF --json``.

Timestamps of the older sections stay the ISO strings ``case_folder`` has always given; the
``work`` section's are datetimes (serialized as ISO 8601).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from casestore import cases
from casestore.work.views import CaseWorkView, work_view


class CustomerView(BaseModel):
    customer_id: str
    name: str
    email: str | None
    phone: str | None
    address: str | None
    postcode: str | None
    account_number: str | None


class DocumentView(BaseModel):
    document_id: int
    item_id: str
    part_index: int
    kind: str
    title: str
    filename: str | None
    content_type: str | None
    blob_sha256: str | None
    channel: str | None
    received_at: str | None
    doc_type: str | None
    text_chars: int
    direction: str = "in"                 # "out": a message we sent (casestore.outbound)
    delivery_state: str | None = None     # of a message we sent: queued, sent, delivered, bounced...
    sender: str | None = None             # who wrote it (for "out": the agent who sent it)
    sent_at: str | None = None            # an email's own Date header (received_at: when casework got it)
    captured_at: str | None = None        # a scan's capture time as the scanner recorded it (TIFF, PDF)


class NoteView(BaseModel):
    note_id: int
    author: str
    body: str
    created_at: str | None


class AuditView(BaseModel):
    at: str | None
    actor: str
    action: str
    reason: str | None
    item_id: str | None
    details: dict[str, Any]


class CaseFolder(BaseModel):
    ref: str
    status: str
    case_type: str
    subject: str
    team: str | None
    restricted: bool
    opened_at: str | None
    updated_at: str | None
    customer: CustomerView | None
    documents: list[DocumentView]
    notes: list[NoteView]
    audit: list[AuditView]
    work: CaseWorkView | None


def case_folder(session: Session, *, ref: str) -> CaseFolder:
    """The folder of case ``ref`` with its work (NotFound for an unknown case; the caller checks
    who may see it)."""
    folder = cases.case_folder(session, ref=ref)
    return CaseFolder(**folder, work=work_view(session, case=cases.get_case(session, ref=ref)))
