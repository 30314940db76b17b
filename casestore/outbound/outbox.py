"""The sender's moves on the outbox, each in the sender's own short transaction.

A sender claims due rows (``claim_due``: state ``sending``, a fresh ``claim_token``, a lease
until ``claimed_until``), and every later move of a row is conditional on that token, so a
sender whose lease ran out and whose row another sender took can no longer touch it.  Just
before the step that cannot be taken back (the end of the SMTP DATA, the Twilio POST) the
sender moves the row to ``committing`` (``mark_committing``); only a sender that still holds
the claim gets True and may take the step.  ``reconcile`` looks at rows whose lease ran out:

- ``sending``: the step was never taken (the row would be ``committing``), so the relay cannot
  have the message: it is queued again and another try is safe;
- ``committing``: the sender stopped after deciding to take the step and before recording the
  answer: the relay may have the message.  It becomes ``unconfirmed`` and is never re-sent by
  itself (for SMS, Twilio's status callback carries our id and settles it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from casestore import audit
from casestore.models import AuditEvent, Case, Document, Item, utcnow
from casestore.outbound.models import OutboundMessage
from casestore.outbound.services import flag_address, set_state

log = logging.getLogger(__name__)

ACTOR = "sender"


@dataclass(frozen=True)
class Claimed:
    """A claimed message: everything a transport needs, detached from the session."""

    id: str
    token: str
    channel: str
    case_ref: str
    recipient: str
    postal_address: str | None
    from_address: str
    subject: str
    body: str
    attachments: tuple[dict[str, Any], ...]
    message_id: str | None
    in_reply_to: str | None
    thread_ids: tuple[str, ...]
    automatic: bool
    created_at: datetime
    attempts: int


def reconcile(session: Session, *, now: datetime) -> tuple[int, int]:
    """(queued again, unconfirmed) for rows whose claim's lease ran out (module docstring)."""
    stale = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.state.in_(("sending", "committing")), OutboundMessage.claimed_until < now)
        .with_for_update(skip_locked=True)
    ).all()
    requeued = unconfirmed = 0
    for msg in stale:
        case = session.get(Case, msg.case_id)
        if msg.state == "sending":
            set_state(session, msg, "queued", claim_token=None, claimed_until=None, next_attempt_at=now,
                      last_error="a sender stopped before handing it over; tried again")
            requeued += 1
            continue
        hint = (f"check the relay's log for Message-ID {msg.message_id}" if msg.channel == "email" else
                "Twilio's status callback settles it if it went; else check the Twilio console")
        set_state(session, msg, "unconfirmed", claim_token=None, claimed_until=None,
                  last_error=f"a sender stopped after handing it to the provider and before recording the answer: "
                             f"it may or may not have gone. {hint}, then `casework outbox confirm {msg.id}` "
                             f"(it went) or `casework outbox retry {msg.id}` (it did not)")
        audit.record(session, actor=ACTOR, action="outbound.unconfirmed", reason=msg.last_error or "", case=case,
                     item_id=msg.id, details={"outbound_id": msg.id, "channel": msg.channel})
        unconfirmed += 1
    if stale:
        log.warning("outbox: %d stale claims queued again, %d unconfirmed (a sender stopped mid-send)",
                    requeued, unconfirmed)
    return requeued, unconfirmed


def claim_due(session: Session, *, now: datetime, limit: int, lease_s: float) -> list[Claimed]:
    """Claim up to ``limit`` queued rows due by ``now``, oldest first (PostgreSQL: rows another
    sender has locked are skipped; SQLite: one writer at a time anyway)."""
    rows = session.execute(
        select(OutboundMessage, Case.ref)
        .join(Case, Case.id == OutboundMessage.case_id)
        .where(OutboundMessage.state == "queued", OutboundMessage.next_attempt_at <= now)
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.created_at)
        .limit(limit)
        .with_for_update(of=OutboundMessage, skip_locked=True)
    ).all()
    until = now + timedelta(seconds=lease_s)
    claimed: list[Claimed] = []
    for msg, ref in rows:
        token = str(uuid.uuid4())
        set_state(session, msg, "sending", claim_token=token, claimed_until=until, attempts=msg.attempts + 1)
        claimed.append(Claimed(
            id=msg.id, token=token, channel=msg.channel, case_ref=ref, recipient=msg.recipient,
            postal_address=msg.postal_address, from_address=msg.from_address, subject=msg.subject, body=msg.body,
            attachments=tuple(msg.attachments or ()), message_id=msg.message_id, in_reply_to=msg.in_reply_to,
            thread_ids=tuple(msg.thread_ids or ()), automatic=msg.automatic, created_at=msg.created_at,
            attempts=msg.attempts))
    return claimed


def _held(session: Session, outbound_id: str, token: str) -> OutboundMessage | None:
    """The row if this claim still holds it (locked for the rest of the transaction), else None."""
    msg = session.get(OutboundMessage, outbound_id, with_for_update=True, populate_existing=True)
    if msg is None or msg.claim_token != token:
        log.warning("outbox: message %s is no longer ours (claim %s lost); leaving it", outbound_id, token)
        return None
    return msg


def mark_committing(session: Session, *, outbound_id: str, token: str) -> bool:
    """True if this claim still holds the row, which is now ``committing`` (see module docstring).

    One conditional UPDATE: this runs once per message on the sender's hot path.  The folder
    entry keeps showing ``sending`` until the answer is recorded."""
    done = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == outbound_id, OutboundMessage.claim_token == token,
               OutboundMessage.state == "sending")
        .values(state="committing", updated_at=utcnow())
        .returning(OutboundMessage.id)
    ).first()
    if done is None:
        log.warning("outbox: message %s is no longer ours (claim %s lost); not sending it", outbound_id, token)
    return done is not None


def _file_blob(session: Session, outbound_id: str, *, blob_sha256: str, content_type: str, size: int,
               filename: str | None) -> None:
    """The exact bytes sent (the .eml, the letter's PDF) become the folder entry's file."""
    session.execute(update(Item).where(Item.item_id == outbound_id).values(
        blob_sha256=blob_sha256, content_type=content_type, size=size, filename=filename))
    session.execute(update(Document).where(Document.item_id == outbound_id, Document.part_index == 0).values(
        blob_sha256=blob_sha256, content_type=content_type, filename=filename))


def record_sent(session: Session, *, outbound_id: str, token: str, provider_id: str, now: datetime,
                blob_sha256: str | None = None, content_type: str = "", size: int = 0, filename: str | None = None,
                segments: int | None = None) -> bool:
    """The provider accepted the message: ``sent`` with its id (audit ``outbound.sent``).  A few
    Core statements (the sender's hot path), conditional on the claim like every move."""
    values: dict[str, Any] = {"state": "sent", "provider_id": provider_id[:200], "sent_at": now, "updated_at": now,
                              "claim_token": None, "claimed_until": None, "last_error": None}
    if segments is not None:
        values["segments"] = segments
    row = session.execute(
        update(OutboundMessage).where(OutboundMessage.id == outbound_id, OutboundMessage.claim_token == token)
        .values(**values).returning(OutboundMessage.case_id, OutboundMessage.channel, OutboundMessage.attempts)
    ).first()
    if row is None:
        log.warning("outbox: message %s is no longer ours (claim %s lost); its answer is not recorded",
                    outbound_id, token)
        return False
    case_id, channel, attempts = row
    session.execute(update(Item).where(Item.item_id == outbound_id).values(delivery_state="sent"))
    if blob_sha256:
        _file_blob(session, outbound_id, blob_sha256=blob_sha256, content_type=content_type, size=size,
                   filename=filename)
    session.execute(insert(AuditEvent), [dict(
        at=now, actor=ACTOR, action="outbound.sent", case_id=case_id, item_id=outbound_id, reason="",
        details={"outbound_id": outbound_id, "channel": channel, "provider_id": provider_id, "attempts": attempts})])
    return True


def record_letter(session: Session, *, outbound_id: str, token: str, blob_sha256: str, size: int,
                  filename: str) -> bool:
    """The letter's PDF is in the folder: ``to_print`` for the mailroom (audit ``letter.ready``)."""
    msg = _held(session, outbound_id, token)
    if msg is None:
        return False
    set_state(session, msg, "to_print", claim_token=None, claimed_until=None, last_error=None)
    _file_blob(session, outbound_id, blob_sha256=blob_sha256, content_type="application/pdf", size=size,
               filename=filename)
    audit.record(session, actor=ACTOR, action="letter.ready", case=session.get(Case, msg.case_id), item_id=msg.id,
                 details={"outbound_id": msg.id, "pdf": blob_sha256})
    return True


def record_retry(session: Session, *, outbound_id: str, token: str, error: str, now: datetime, delay_s: float,
                 max_attempts: int) -> str | None:
    """A failure that may pass (relay down, 4xx): queued again after ``delay_s``, or ``failed``
    once ``max_attempts`` are used.  The new state, or None if the claim was lost."""
    msg = _held(session, outbound_id, token)
    if msg is None:
        return None
    if msg.attempts >= max_attempts:
        _fail(session, msg, f"gave up after {msg.attempts} attempts; last: {error}")
        return "failed"
    set_state(session, msg, "queued", claim_token=None, claimed_until=None, last_error=error[:2000],
              next_attempt_at=now + timedelta(seconds=delay_s))
    return "queued"


def record_failed(session: Session, *, outbound_id: str, token: str, error: str, flag: bool) -> bool:
    """A definite refusal (5xx, invalid number): ``failed``; ``flag`` also flags the address."""
    msg = _held(session, outbound_id, token)
    if msg is None:
        return False
    _fail(session, msg, error)
    if flag:
        flag_address(session, msg=msg, reason=f"the provider refused it: {error[:300]}", actor=ACTOR)
    return True


def record_unconfirmed(session: Session, *, outbound_id: str, token: str, error: str) -> bool:
    """The connection broke after the final step: the provider may have it (never re-sent by itself)."""
    msg = _held(session, outbound_id, token)
    if msg is None:
        return False
    set_state(session, msg, "unconfirmed", claim_token=None, claimed_until=None,
              last_error=f"{error[:1000]}: it may or may not have gone; check, then `casework outbox confirm "
                         f"{msg.id}` or `casework outbox retry {msg.id}`")
    audit.record(session, actor=ACTOR, action="outbound.unconfirmed", reason=msg.last_error or "",
                 case=session.get(Case, msg.case_id), item_id=msg.id, details={"outbound_id": msg.id})
    return True


def _fail(session: Session, msg: OutboundMessage, error: str) -> None:
    set_state(session, msg, "failed", claim_token=None, claimed_until=None, last_error=error[:2000])
    audit.record(session, actor=ACTOR, action="outbound.failed", reason=error[:2000],
                 case=session.get(Case, msg.case_id), item_id=msg.id,
                 details={"outbound_id": msg.id, "channel": msg.channel, "to": msg.recipient})
    log.warning("outbound %s to %s failed: %s", msg.id, msg.recipient, error)
