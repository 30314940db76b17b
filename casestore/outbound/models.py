"""Tables of the outbound domain: the outbox (one row per message we send) and flagged addresses.

Created by migration 0008 (``task_id``: 0010).  ``casestore.outbound`` owns these tables; other domains never read
them.  Each outbox row has an ``items`` row with the same id (``direction='out'``) and one
document, so the message is in the case folder and the search index like anything inbound.

States (``STATES``) and who moves a row between them:

- ``queued``: waiting to go at ``next_attempt_at`` (the request that asked for it wrote it);
- ``sending``: claimed by a sender (``claim_token``, until ``claimed_until``);
- ``committing``: the sender wrote this just before the step that cannot be taken back (the
  end of the SMTP DATA, the Twilio POST);
- ``unconfirmed``: a sender stopped in the ``committing`` window: the relay may or may not have
  the message.  Never re-sent by itself; a person checks (or Twilio's status callback settles it);
- ``sent`` (the relay or Twilio accepted it), ``delivered`` (Twilio's callback said so);
- ``failed``: rejected, or out of attempts; ``bounced``: a bounce of it came back;
- letters: ``to_print`` (the PDF is in the folder), ``printed``, ``posted``;
- ``held``: an automatic message that was not queued (flagged address, rate limit): see ``last_error``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from casestore.models import Base, JSONType, utcnow

CHANNELS: tuple[str, ...] = ("email", "sms", "letter")
STATES: tuple[str, ...] = ("queued", "sending", "committing", "unconfirmed", "sent", "delivered", "failed",
                           "bounced", "to_print", "printed", "posted", "held")
NEEDS_A_PERSON: tuple[str, ...] = ("unconfirmed", "failed", "bounced", "held")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class OutboundMessage(Base):
    """One message to a customer: what to send, to whom, and how far it got."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("state", STATES), name="state"),
        Index("ix_outbound_messages_due", "next_attempt_at", sqlite_where=text("state = 'queued'"),
              postgresql_where=text("state = 'queued'")),
        Index("ix_outbound_messages_claimed", "claimed_until",
              sqlite_where=text("state IN ('sending', 'committing')"),
              postgresql_where=text("state IN ('sending', 'committing')")),
        Index("ix_outbound_messages_recipient_key_created_at", "recipient_key", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # also the item_id of its folder entry
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(16), index=True)
    template: Mapped[str | None] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(Text)  # address, E.164 number, or the addressee's name (letters)
    recipient_key: Mapped[str] = mapped_column(String(320))  # normalised: rate limit and flags
    postal_address: Mapped[str | None] = mapped_column(Text)  # letters: the lines in the window
    from_address: Mapped[str] = mapped_column(String(320), default="", server_default="")
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    message_id: Mapped[str | None] = mapped_column(String(300), unique=True)  # email, with angle brackets
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    thread_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)  # References: header, oldest first
    automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    task_id: Mapped[int | None] = mapped_column(Integer, index=True)  # the work task it was sent for (0010)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(36))
    claimed_until: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(200), index=True)  # SMTP queue id, Twilio SID
    segments: Mapped[int | None] = mapped_column(Integer)  # SMS
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    printed_at: Mapped[datetime | None]
    posted_at: Mapped[datetime | None]


class FlaggedAddress(Base):
    """An address or number that bounced or was rejected: nothing more goes to it until a person
    has checked it with the customer (``casework outbox unflag``)."""

    __tablename__ = "flagged_addresses"

    address_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    outbound_id: Mapped[str | None] = mapped_column(String(36))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)
