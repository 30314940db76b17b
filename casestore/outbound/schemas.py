"""Typed read models of the outbound domain (the REST routes' response models, the CLI's --json)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from casestore.outbound.drafts import Draft
from casestore.outbound.models import FlaggedAddress, OutboundMessage


class AttachmentView(BaseModel):
    document_id: int
    filename: str
    content_type: str


class DraftView(BaseModel):
    """A preview: the message exactly as it would be queued now."""

    case_ref: str
    channel: str
    template: str | None
    to: str
    postal_address: str | None = Field(description="letters: the lines shown in the envelope's window")
    from_address: str
    subject: str
    body: str
    attachments: list[AttachmentView]
    in_reply_to: str | None
    references: list[str]
    sms_segments: int | None = None
    sms_encoding: str | None = None
    problems: list[str] = Field(default_factory=list, description="what would stop it being sent now")

    @classmethod
    def of(cls, draft: Draft, problems: list[str]) -> DraftView:
        return cls(case_ref=draft.case_ref, channel=draft.channel, template=draft.template, to=draft.recipient,
                   postal_address=draft.postal_address, from_address=draft.from_address, subject=draft.subject,
                   body=draft.body,
                   attachments=[AttachmentView(document_id=a.document_id, filename=a.filename,
                                               content_type=a.content_type) for a in draft.attachments],
                   in_reply_to=draft.in_reply_to, references=list(draft.thread_ids),
                   sms_segments=draft.sms.segments if draft.sms else None,
                   sms_encoding=draft.sms.encoding if draft.sms else None, problems=problems)


class OutboundView(BaseModel):
    """One outbound message: where it is (``state``) and what a person may need to know."""

    id: str = Field(description="also the item_id of its entry in the case folder")
    case_ref: str
    channel: str
    state: str
    to: str
    from_address: str
    subject: str
    template: str | None
    message_id: str | None
    provider_id: str | None
    attempts: int
    segments: int | None
    last_error: str | None
    automatic: bool
    task_id: int | None = Field(default=None, description="the work task it was sent for, if any")
    created_by: str
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    printed_at: datetime | None
    posted_at: datetime | None

    @classmethod
    def of(cls, msg: OutboundMessage, case_ref: str) -> OutboundView:
        return cls(id=msg.id, case_ref=case_ref, channel=msg.channel, state=msg.state, to=msg.recipient,
                   from_address=msg.from_address, subject=msg.subject, template=msg.template,
                   message_id=msg.message_id, provider_id=msg.provider_id, attempts=msg.attempts,
                   segments=msg.segments, last_error=msg.last_error, automatic=msg.automatic,
                   task_id=msg.task_id, created_by=msg.created_by, created_at=msg.created_at,
                   next_attempt_at=msg.next_attempt_at,
                   sent_at=msg.sent_at, delivered_at=msg.delivered_at, printed_at=msg.printed_at,
                   posted_at=msg.posted_at)


class QueuedView(BaseModel):
    id: str
    item_id: str
    case_ref: str
    channel: str
    state: str
    to: str
    duplicate: bool
    search_index: str = Field(default="updated", description="'updated', or why search does not show it yet")


class FlaggedView(BaseModel):
    address: str
    channel: str
    reason: str
    outbound_id: str | None
    flagged_at: datetime

    @classmethod
    def of(cls, flag: FlaggedAddress) -> FlaggedView:
        return cls(address=flag.address_key, channel=flag.channel, reason=flag.reason, outbound_id=flag.outbound_id,
                   flagged_at=flag.flagged_at)
