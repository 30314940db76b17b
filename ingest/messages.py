"""Envelope types that travel on the bus, and their one serializer per topic.

Every message carries ``item_id``, ``schema_version``, ``channel``, ``received_at`` and an
idempotency key.  Document bytes never travel: messages refer to blobs by sha256 (claim check).
Each stage's message extends the previous one, so a classified item still carries what was
extracted and what arrived.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

TOPIC_RAW = "intake.raw"
TOPIC_EXTRACTED = "intake.extracted"
TOPIC_CLASSIFIED = "intake.classified"
TOPIC_DEAD = "intake.dead"

_ITEM_NAMESPACE = uuid.UUID("6f1c1c1e-2b1a-5f7e-9a57-0c45e0a4b0d1")

Channel = Literal["email", "scan", "file", "sms", "fax", "webform", "api", "call"]
Outcome = Literal["attached", "new_case", "triage", "noise"]
FILED_OUTCOMES = frozenset(get_args(Outcome))  # an item with one of these is filed: done
PartKind = Literal["body", "attachment", "page_set", "file", "record"]


def item_id_for(idempotency_key: str) -> str:
    """The item id is derived from the idempotency key, so the same input always gets the same id."""
    return str(uuid.uuid5(_ITEM_NAMESPACE, idempotency_key))


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RawItem(_Frozen):
    """What a connector publishes to ``intake.raw``: an inbound thing, its bytes in the blob store."""

    item_id: str
    schema_version: int = SCHEMA_VERSION
    channel: Channel
    received_at: datetime
    idempotency_key: str
    blob_sha256: str
    size: int
    filename: str | None = None
    content_type: str | None = None
    source: str = Field(default="", description="where it came from: a path, a mailbox/UID, a URL")
    metadata: dict[str, str] = Field(default_factory=dict, description="connector hints: team, doc_type, sender")


class Part(_Frozen):
    """One readable part of an item: an email body, an attachment, a page set, a CSV record."""

    index: int
    kind: PartKind
    filename: str | None = None
    content_type: str | None = None
    blob_sha256: str | None = None
    text: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="why this part could not be read, if it could not")


class EmailHeaders(_Frozen):
    """Structured header fields of an email, and whether it is automatic mail."""

    from_addr: str | None = None
    from_name: str | None = None
    sender_field: str | None = Field(default=None, description="header the sender was read from: from, "
                                     "or sender / reply-to when From was unusable")
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    auto_submitted: str | None = None
    is_bounce: bool = False
    is_auto_reply: bool = False
    is_bulk: bool = False
    original_message_id: str | None = Field(default=None, description="for bounces/auto-replies")
    spam_verdict: str | None = Field(default=None, description="a mail filter's spam verdict found in the headers, "
                                     "e.g. 'X-Spam-Flag: YES'")


class ExtractedItem(RawItem):
    """What the extract stage publishes to ``intake.extracted``."""

    parts: list[Part] = Field(default_factory=list)
    email: EmailHeaders | None = None
    warnings: list[str] = Field(default_factory=list)


class Prospect(_Frozen):
    """Who wrote an item from a person not yet known, as the classifier read it (issue 11.2):
    the file stage keeps it as a prospect customer of the new case."""

    name: str | None = None
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164")
    address: str | None = None
    postcode: str | None = None


class Decision(_Frozen):
    """The classifier's decision about an item, with the evidence that led to it."""

    outcome: Outcome
    case_ref: str | None = None
    customer_id: str | None = None
    doc_type: str = "general_enquiry"
    case_type: str | None = None
    reason: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    candidates: list[str] = Field(default_factory=list)
    prospect: Prospect | None = Field(default=None, description="new_case of a person not yet known: who wrote")


class ClassifiedItem(ExtractedItem):
    """What the classify stage publishes to ``intake.classified``."""

    decision: Decision


class DeadLetter(_Frozen):
    """A message a stage could not process: the original envelope plus what went wrong."""

    item_id: str | None
    schema_version: int = SCHEMA_VERSION
    stage: str
    topic: str
    error_class: str
    message: str
    retryable: bool
    attempts: int
    failed_at: datetime
    key: str
    envelope: str = Field(description="the original message bytes, decoded as UTF-8 (replacement on error)")


TOPIC_TYPES: dict[str, type[_Frozen]] = {
    TOPIC_RAW: RawItem,
    TOPIC_EXTRACTED: ExtractedItem,
    TOPIC_CLASSIFIED: ClassifiedItem,
    TOPIC_DEAD: DeadLetter,
}


def encode(message: BaseModel) -> bytes:
    """The one serializer: JSON, UTF-8."""
    return message.model_dump_json().encode()


def decode(topic: str, value: bytes) -> Any:
    """Parse the bytes of a message on ``topic`` into its type; raises pydantic.ValidationError."""
    return TOPIC_TYPES[topic].model_validate_json(value)
