"""What people and providers do to messages already queued: lists, the mailroom's marks, an
operator's retry or confirmation, and Twilio's delivery status callbacks.

Every list and action follows the access rule (casestore.access): a message is visible, and
may be acted on, exactly when its case is; ``viewer=None`` is the operator at the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from casestore import access, audit
from casestore.errors import Conflict, InvalidInput
from casestore.models import Case, Item, utcnow
from casestore.outbound import wakeup
from casestore.outbound.models import CHANNELS, STATES, OutboundMessage
from casestore.outbound.schemas import OutboundView
from casestore.outbound.services import flag_address, get_message, set_state

log = logging.getLogger(__name__)

LETTER_STATES = ("to_print", "printed", "posted")
MAX_LIST = 1000
# Twilio MessageStatus -> our state, and the order in which they may follow each other
TWILIO_STATES = {"accepted": "sent", "queued": "sent", "sending": "sent", "sent": "sent", "delivered": "delivered",
                 "undelivered": "failed", "failed": "failed"}
_RANK = {"queued": 0, "sending": 0, "committing": 0, "unconfirmed": 0, "sent": 1, "failed": 2, "delivered": 2}
PERMANENT_SMS_ERRORS = frozenset({"21211", "21614", "30005", "30006"})  # unknown, landline, not mobile


def _visible_rows(session: Session, viewer: access.Subject | None, query: object) -> list[OutboundView]:
    rows = session.execute(query).all()  # type: ignore[call-overload]
    out: list[OutboundView] = []
    for msg, ref, team, restricted in rows:
        if viewer is None or access.case_visible(viewer, team=team, restricted=bool(restricted)):
            out.append(OutboundView.of(msg, ref))
    return out


def list_messages(session: Session, *, viewer: access.Subject | None = None, states: Sequence[str] = (),
                  channel: str | None = None, case_ref: str | None = None, limit: int = 100) -> list[OutboundView]:
    """Messages, newest first, filtered by state(s), channel and case."""
    bad = [s for s in states if s not in STATES]
    if bad:
        raise InvalidInput(f"state {bad[0]!r} is not one of {', '.join(STATES)}")
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    query = (select(OutboundMessage, Case.ref, Case.team, Case.restricted)
             .join(Case, Case.id == OutboundMessage.case_id)
             .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id)
             .limit(max(1, min(limit, MAX_LIST))))
    if states:
        query = query.where(OutboundMessage.state.in_(list(states)))
    if channel:
        query = query.where(OutboundMessage.channel == channel)
    if case_ref:
        query = query.where(Case.ref == case_ref.strip())
    return _visible_rows(session, viewer, query)


def list_letters(session: Session, *, viewer: access.Subject | None = None, states: Sequence[str] = ("to_print",),
                 limit: int = 100) -> list[OutboundView]:
    """The mailroom's queue: letters to print (oldest first), or printed ones waiting to be posted."""
    bad = [s for s in states if s not in LETTER_STATES]
    if bad:
        raise InvalidInput(f"letter state {bad[0]!r} is not one of {', '.join(LETTER_STATES)}")
    query = (select(OutboundMessage, Case.ref, Case.team, Case.restricted)
             .join(Case, Case.id == OutboundMessage.case_id)
             .where(OutboundMessage.channel == "letter", OutboundMessage.state.in_(list(states)))
             .order_by(OutboundMessage.created_at, OutboundMessage.id)
             .limit(max(1, min(limit, MAX_LIST))))
    return _visible_rows(session, viewer, query)


def mark_letter(session: Session, *, outbound_id: str, action: str, actor: str,
                viewer: access.Subject | None = None) -> OutboundView:
    """The mailroom printed (``printed``) or posted (``posted``) a letter; marking it again is a
    no-op, posting an unprinted letter marks it printed too.  Audit ``letter.printed``/``letter.posted``."""
    if action not in ("printed", "posted"):
        raise InvalidInput(f"a letter is marked 'printed' or 'posted', not {action!r}")
    msg = get_message(session, outbound_id=outbound_id, viewer=viewer)
    case = session.get(Case, msg.case_id)
    ref = case.ref if case else ""
    if msg.channel != "letter":
        raise InvalidInput(f"message {msg.id} is an {msg.channel}, not a letter")
    if msg.state not in LETTER_STATES:
        raise Conflict(f"letter {msg.id} is {msg.state}: its PDF is not made yet (the sender makes it); "
                       "wait for it to show in casework letters list")
    if msg.state == action or (msg.state == "posted" and action == "printed"):
        return OutboundView.of(msg, ref)
    now = utcnow()
    values = {"printed_at": msg.printed_at or now}
    if action == "posted":
        values["posted_at"] = now
    set_state(session, msg, action, **values)
    audit.record(session, actor=actor, action=f"letter.{action}", case=case, item_id=msg.id,
                 details={"outbound_id": msg.id})
    return OutboundView.of(msg, ref)


def letter_pdf(session: Session, *, outbound_id: str, viewer: access.Subject | None = None) -> str:
    """The sha256 of the letter's PDF in the blob store; Conflict while the sender has not made it."""
    msg = get_message(session, outbound_id=outbound_id, viewer=viewer)
    if msg.channel != "letter":
        raise InvalidInput(f"message {msg.id} is an {msg.channel}, not a letter")
    sha = session.scalar(select(Item.blob_sha256).where(Item.item_id == msg.id))
    if not sha:
        raise Conflict(f"letter {msg.id} has no PDF yet ({msg.state}): the sender makes it; try again shortly")
    return str(sha)


def retry_message(session: Session, *, outbound_id: str, actor: str, reason: str = "",
                  viewer: access.Subject | None = None) -> OutboundView:
    """Send a ``failed``, ``unconfirmed``, ``bounced`` or ``held`` message again, now (a person
    decided it did not go, or fixed what stopped it).  Audit ``outbound.retried``."""
    msg = get_message(session, outbound_id=outbound_id, viewer=viewer)
    if msg.state not in ("failed", "unconfirmed", "bounced", "held"):
        raise Conflict(f"message {msg.id} is {msg.state}; only failed, unconfirmed, bounced or held messages are "
                       "sent again by hand")
    if msg.state == "held" and not msg.recipient:
        raise Conflict(f"message {msg.id} was held before it had a recipient ({msg.last_error}); fix that and "
                       "send a new one")
    case = session.get(Case, msg.case_id)
    was = msg.state
    set_state(session, msg, "queued", next_attempt_at=utcnow(), attempts=0, claim_token=None, claimed_until=None)
    wakeup.queued(session)
    audit.record(session, actor=actor, action="outbound.retried", reason=reason, case=case, item_id=msg.id,
                 details={"outbound_id": msg.id, "was": was})
    return OutboundView.of(msg, case.ref if case else "")


def confirm_message(session: Session, *, outbound_id: str, actor: str, reason: str = "",
                    viewer: access.Subject | None = None) -> OutboundView:
    """An ``unconfirmed`` message did go (a person found it in the relay's log): ``sent``."""
    msg = get_message(session, outbound_id=outbound_id, viewer=viewer)
    if msg.state != "unconfirmed":
        raise Conflict(f"message {msg.id} is {msg.state}, not unconfirmed; nothing to confirm")
    case = session.get(Case, msg.case_id)
    set_state(session, msg, "sent", sent_at=msg.sent_at or utcnow(), last_error=None)
    audit.record(session, actor=actor, action="outbound.confirmed", reason=reason, case=case, item_id=msg.id,
                 details={"outbound_id": msg.id})
    return OutboundView.of(msg, case.ref if case else "")


def record_sms_status(session: Session, *, message_sid: str, status: str, outbound_id: str | None = None,
                      error_code: str | None = None) -> str | None:
    """Twilio's delivery status callback for one of our SMS; the message's state after it, or None
    when the SMS is not ours.  Callbacks may come late or out of order: a state never goes back
    (``delivered`` stays).  The callback carries our id, so it also settles a message a sender
    left ``sending``/``committing``/``unconfirmed``.  Undelivered to an unknown or landline
    number flags it."""
    mapped = TWILIO_STATES.get(status.strip().lower())
    if mapped is None:
        raise InvalidInput(f"unknown MessageStatus {status!r}")
    conditions = [OutboundMessage.provider_id == message_sid]
    if outbound_id:
        conditions.append(OutboundMessage.id == outbound_id)
    msg = session.scalar(select(OutboundMessage).where(OutboundMessage.channel == "sms", or_(*conditions))
                         .with_for_update())
    if msg is None:
        return None
    if _RANK[mapped] <= _RANK.get(msg.state, 3):  # not further along than we are (or a final state)
        if msg.provider_id is None:
            msg.provider_id = message_sid
        return msg.state  # old news
    case = session.get(Case, msg.case_id)
    now = utcnow()
    values: dict[str, object] = {"provider_id": msg.provider_id or message_sid, "claim_token": None,
                                 "claimed_until": None, "sent_at": msg.sent_at or now}
    if mapped == "delivered":
        values["delivered_at"] = now
        values["last_error"] = None
    if mapped == "failed":
        values["last_error"] = f"Twilio reports the SMS {status} (error {error_code or 'none given'})"
    was = msg.state
    set_state(session, msg, mapped, **values)
    audit.record(session, actor="twilio", action=f"outbound.{mapped}", case=case, item_id=msg.id,
                 details={"outbound_id": msg.id, "status": status, "error_code": error_code, "was": was,
                          "provider_id": message_sid})
    if mapped == "failed" and (error_code or "") in PERMANENT_SMS_ERRORS:
        flag_address(session, msg=msg, reason=f"SMS undeliverable (Twilio error {error_code})", actor="twilio")
    log.info("sms %s (outbound %s): %s -> %s", message_sid, msg.id, was, mapped)
    return mapped
