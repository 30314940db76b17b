"""Queueing outbound messages, and what happens to them after they left: the agent's side.

``queue_message`` is the one way a message enters the outbox.  It writes, in the caller's
transaction and nowhere else: the outbox row, the message's folder entry (an ``items`` row with
``direction='out'`` and one document), a search outbox row for that entry, and an audit event
``outbound.queued``.  So whatever asks for a message (an agent pressing Send, a task completed
with a code that sends the outcome letter) either commits together with its message or not at
all, and the sender only ever sees committed messages.  After the commit the caller drains the
search outbox rows it wrote (``casestore.search.outbox.written_in``) so search shows the entry at
once; if the index is down they wait in the outbox and reach it when it is back.  Sending
changes nothing search holds (state and the sent file are not indexed), so the sender does not
write to the index.

Retries of the same request are safe when the caller passes ``idempotency_key`` (a task's
completion: ``task:<id>:outcome``): the existing message is returned, nothing is written.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casestore import access, audit
from casestore.cases import get_case
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import Case, Document, Item, utcnow
from casestore.outbound import wakeup
from casestore.outbound.drafts import Draft, OutboxPolicy, compose, message_id_for
from casestore.outbound.errors import RateLimited, RecipientProblem
from casestore.outbound.models import STATES, FlaggedAddress, OutboundMessage
from casestore.outbound.templates import Templates
from casestore.search import outbox as search_outbox
from casestore.validation import no_nul
from casestore.work.models import WorkTask  # outbound may read work's tables; work never imports outbound

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class QueuedMessage:
    id: str
    item_id: str  # its folder entry (the search outbox row for it is written with it)
    case_ref: str
    channel: str
    state: str
    recipient: str
    duplicate: bool  # True: the idempotency key was used before; nothing was written


def _case_for(session: Session, ref: str, viewer: access.Subject | None) -> Case:
    return access.visible_case(session, viewer, ref=ref) if viewer is not None else get_case(session, ref=ref)


def flagged(session: Session, *, address_key: str) -> FlaggedAddress | None:
    return session.get(FlaggedAddress, address_key)


def sent_within(session: Session, *, recipient_key: str, since: datetime) -> int:
    """Messages queued to this recipient since ``since`` (held ones do not count: they never went)."""
    return int(session.scalar(
        select(func.count()).select_from(OutboundMessage)
        .where(OutboundMessage.recipient_key == recipient_key, OutboundMessage.created_at >= since,
               OutboundMessage.state != "held")) or 0)


def check_recipient(session: Session, draft: Draft, policy: OutboxPolicy) -> None:
    """RecipientProblem for a flagged address, RateLimited past the daily limit."""
    flag = flagged(session, address_key=draft.recipient_key)
    if flag is not None:
        raise RecipientProblem(
            f"{draft.recipient} is flagged since {flag.flagged_at:%Y-%m-%d %H:%M} UTC ({flag.reason}); check it "
            f"with the customer, correct it in the CRM, then clear it: casework outbox unflag '{flag.address_key}'")
    if policy.rate_limit_per_day > 0:
        n = sent_within(session, recipient_key=draft.recipient_key, since=utcnow() - RATE_WINDOW)
        if n >= policy.rate_limit_per_day:
            raise RateLimited(
                f"{n} messages went to {draft.recipient} in the last 24 hours; the limit is "
                f"{policy.rate_limit_per_day} (a guard against mail loops): wait, or raise "
                "CASEWORK_OUTBOUND__RATE_LIMIT_PER_DAY")


def preview(session: Session, *, case_ref: str, channel: str, actor: str, policy: OutboxPolicy,
            templates: Templates | None, template: str | None = None, fields: Mapping[str, str] | None = None,
            subject: str | None = None, body: str | None = None, to: str | None = None,
            attachments: Sequence[int] = (), reply_to_item: str | None = None,
            viewer: access.Subject | None = None) -> tuple[Draft, list[str]]:
    """The draft as it would be queued now, and the problems that would stop it (flagged address,
    rate limit) as messages; writes nothing."""
    case = _case_for(session, case_ref, viewer)
    draft = compose(session, case=case, channel=channel, actor=actor, policy=policy, templates=templates,
                    template=template, fields=fields, subject=subject, body=body, to=to, attachments=attachments,
                    reply_to_item=reply_to_item)
    problems: list[str] = []
    try:
        check_recipient(session, draft, policy)
    except (RecipientProblem, RateLimited) as exc:
        problems.append(str(exc))
    return draft, problems


def queue_message(session: Session, *, case_ref: str, channel: str, actor: str, policy: OutboxPolicy,
                  templates: Templates | None = None, template: str | None = None,
                  fields: Mapping[str, str] | None = None, subject: str | None = None, body: str | None = None,
                  to: str | None = None, attachments: Sequence[int] = (), reply_to_item: str | None = None,
                  viewer: access.Subject | None = None, automatic: bool = False,
                  idempotency_key: str | None = None, task_id: int | None = None) -> QueuedMessage:
    """Queue one message from the case ``case_ref`` in the caller's transaction (module docstring).

    ``viewer``: whoever sends must see the case (casestore.access; NotFound alike for a hidden and
    a missing case); None when the caller has checked already (the work engine).  ``automatic``:
    sent by the system, not typed by a person (the email carries ``Auto-Submitted``); a problem a
    person must act on (no mobile number, a flagged address, the rate limit) then does not fail
    the caller's transaction: the message is stored as ``held`` with the problem in ``last_error``,
    shown in the case and in ``casework outbox list --state held``.  For a person it is an error
    (RecipientProblem 422, RateLimited 429) with what to do.  ``task_id``: the open work task of
    this case the message is sent for (a task with ``requires_outbound`` counts it).
    """
    if idempotency_key is not None:
        existing = session.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == idempotency_key))
        if existing is not None:
            case = session.get(Case, existing.case_id)
            return QueuedMessage(existing.id, existing.id, case.ref if case else case_ref, existing.channel,
                                 existing.state, existing.recipient, duplicate=True)
    case = _case_for(session, case_ref, viewer)
    if task_id is not None:
        _check_task(session, case=case, task_id=task_id)
    outbound_id = str(uuid.uuid4())
    draft: Draft | None = None
    try:
        draft = compose(session, case=case, channel=channel, actor=actor, policy=policy, templates=templates,
                        template=template, fields=fields, subject=subject, body=body, to=to,
                        attachments=attachments, reply_to_item=reply_to_item)
        check_recipient(session, draft, policy)
        state, problem = ("queued", None)
    except (RecipientProblem, RateLimited) as exc:
        if not automatic:
            raise
        state, problem = "held", str(exc)
        draft = draft or _held_draft(case, channel, template, subject, body)
    try:
        with session.begin_nested():
            msg = _insert(session, case=case, draft=draft, outbound_id=outbound_id, actor=actor, state=state,
                          problem=problem, policy=policy, automatic=automatic, idempotency_key=idempotency_key,
                          task_id=task_id)
    except IntegrityError as exc:
        raise Conflict(f"the message could not be queued ({exc.orig}); if it was a retry with the same "
                       "idempotency key, it is queued already") from exc
    if state == "queued":
        wakeup.queued(session)
    log.info("outbound %s (%s to %s) %s for case %s by %s", msg.id, msg.channel, msg.recipient, state, case.ref,
             actor)
    return QueuedMessage(msg.id, msg.id, case.ref, msg.channel, msg.state, msg.recipient, duplicate=False)


def _check_task(session: Session, *, case: Case, task_id: int) -> None:
    """A message is sent for a task of its own case (open, or the one completing right now)."""
    task_case = session.scalar(select(WorkTask.case_id).where(WorkTask.id == task_id))
    if task_case != case.id:
        raise InvalidInput(f"task {task_id} is not a task of case {case.ref}; send for one of its own tasks, "
                           "or for none")


def _held_draft(case: Case, channel: str, template: str | None, subject: str | None, body: str | None) -> Draft:
    """What is kept of an automatic message that could not be composed or may not go."""
    return Draft(case.ref, channel, template, "", f"held:{case.ref}", None, "", subject or "",
                 body or f"(template {template} for {channel}: not sent, see the problem)")


def _insert(session: Session, *, case: Case, draft: Draft, outbound_id: str, actor: str, state: str,
            problem: str | None, policy: OutboxPolicy, automatic: bool, idempotency_key: str | None,
            task_id: int | None = None) -> OutboundMessage:
    now = utcnow()
    message_id = (message_id_for(outbound_id, policy=policy, from_address=draft.from_address)
                  if draft.channel == "email" and draft.recipient else None)  # a held one may be retried
    msg = OutboundMessage(
        id=outbound_id, case_id=case.id, channel=draft.channel, state=state, template=draft.template,
        recipient=no_nul(draft.recipient), recipient_key=draft.recipient_key[:320],
        postal_address=no_nul(draft.postal_address), from_address=draft.from_address[:320],
        subject=no_nul(draft.subject), body=no_nul(draft.body), attachments=[a.as_json() for a in draft.attachments],
        message_id=message_id, in_reply_to=draft.in_reply_to, thread_ids=list(draft.thread_ids),
        automatic=automatic, idempotency_key=idempotency_key, task_id=task_id, attempts=0, next_attempt_at=now,
        segments=draft.sms.segments if draft.sms else None, last_error=problem, created_by=actor[:100],
        created_at=now, updated_at=now)
    session.add(msg)
    meta: dict[str, Any] = {"direction": "out", "outbound_id": outbound_id, "to": draft.recipient,
                            "from": draft.from_address, "template": draft.template, "sent_by": actor}
    if message_id:
        meta["message_id"] = message_id  # replies thread back through the matcher's Message-ID look-up
    if draft.sms:
        meta["segments"] = draft.sms.segments
    title = {"email": draft.subject, "sms": f"SMS to {draft.recipient}"}.get(draft.channel) or draft.subject
    session.add(Item(
        item_id=outbound_id, idempotency_key=f"outbound:{outbound_id}", channel=draft.channel, received_at=now,
        source=f"outbound:{actor}", filename=None, blob_sha256=None, content_type="text/plain; charset=utf-8",
        size=len(draft.body.encode("utf-8")), meta=no_nul(meta), sender=actor[:100], subject=no_nul(draft.subject),
        outcome="attached", case_id=case.id, doc_type=draft.template or "reply",
        decision={"reason": f"{'sent automatically' if automatic else 'written'} by {actor}", "direction": "out"},
        filed_at=now, direction="out", delivery_state=state))
    session.flush()
    session.add(Document(item_id=outbound_id, case_id=case.id, part_index=0, kind=draft.channel,
                         title=no_nul(title or draft.channel), filename=None, content_type="text/plain; charset=utf-8",
                         blob_sha256=None, text=no_nul(draft.body), fields={}, error=None, created_at=now))
    case.updated_at = now
    search_outbox.enqueue(session, item_ids=[outbound_id])  # search shows it from this commit (or when back)
    details: dict[str, Any] = {"outbound_id": outbound_id, "channel": draft.channel, "to": draft.recipient,
                               "template": draft.template, "automatic": automatic}
    if task_id is not None:
        details["task_id"] = task_id
    if problem:
        details["problem"] = problem
    audit.record(session, actor=actor, action="outbound.queued" if state == "queued" else "outbound.held",
                 reason=problem or "", case=case, item_id=outbound_id, details=details)
    return msg


# -- moving a message on: shared with the sender and the mailroom ------------------------------

def set_state(session: Session, msg: OutboundMessage, state: str, **values: Any) -> None:
    """Move ``msg`` to ``state`` (and its folder entry's delivery state with it)."""
    if state not in STATES:
        raise InvalidInput(f"state {state!r} is not one of {', '.join(STATES)}")
    msg.state = state
    msg.updated_at = utcnow()
    for key, value in values.items():
        setattr(msg, key, value)
    session.execute(update(Item).where(Item.item_id == msg.id).values(delivery_state=state))
    session.flush()


def get_message(session: Session, *, outbound_id: str, viewer: access.Subject | None = None) -> OutboundMessage:
    msg = session.get(OutboundMessage, outbound_id.strip())
    if msg is not None and viewer is not None:
        case = session.get(Case, msg.case_id)
        if case is None or not access.can_see_case(viewer, case):
            msg = None
    if msg is None:
        raise NotFound(f"no outbound message {outbound_id!r} (or not visible to your teams); "
                       "see casework outbox list")
    return msg


def flag_address(session: Session, *, msg: OutboundMessage, reason: str, actor: str) -> None:
    """Stop sending to ``msg``'s recipient until a person clears it (audit ``outbound.address_flagged``)."""
    if flagged(session, address_key=msg.recipient_key) is None:
        session.add(FlaggedAddress(address_key=msg.recipient_key, channel=msg.channel, reason=no_nul(reason)[:1000],
                                   outbound_id=msg.id, case_id=msg.case_id, flagged_at=utcnow()))
    case = session.get(Case, msg.case_id)
    audit.record(session, actor=actor, action="outbound.address_flagged", reason=reason, case=case, item_id=msg.id,
                 details={"outbound_id": msg.id, "address": msg.recipient_key})
    session.flush()


def unflag_address(session: Session, *, address_key: str, actor: str, reason: str = "") -> FlaggedAddress:
    flag = flagged(session, address_key=address_key.strip())
    if flag is None:
        raise NotFound(f"{address_key!r} is not flagged; see the flagged addresses: casework outbox flagged")
    case = session.get(Case, flag.case_id) if flag.case_id is not None else None
    session.delete(flag)
    audit.record(session, actor=actor, action="outbound.address_unflagged", reason=reason, case=case,
                 details={"address": flag.address_key, "was": flag.reason})
    session.flush()
    return flag


def list_flagged(session: Session) -> list[FlaggedAddress]:
    return list(session.scalars(select(FlaggedAddress).order_by(FlaggedAddress.flagged_at)))


def record_bounce(session: Session, *, message_id: str, item_id: str, actor: str, reason: str = "") -> bool:
    """A bounce of one of our emails came in (the file stage found it answers ``message_id``): the
    message is ``bounced``, its address flagged, and the case's audit trail links the bounce item.
    False when ``message_id`` is not ours."""
    from casestore.outbound.drafts import bracketed

    msg = session.scalar(select(OutboundMessage).where(OutboundMessage.message_id == bracketed(message_id)))
    if msg is None:
        return False
    if msg.state == "bounced":  # the same bounce delivered again, or a second one: recorded once
        return True
    why = reason or "a bounce came back for it"
    set_state(session, msg, "bounced", last_error=f"bounced: {why} (item {item_id})")
    case = session.get(Case, msg.case_id)
    audit.record(session, actor=actor, action="outbound.bounced", reason=why, case=case, item_id=msg.id,
                 details={"outbound_id": msg.id, "bounce_item_id": item_id, "to": msg.recipient})
    flag_address(session, msg=msg, reason=f"email to it bounced (case {case.ref if case else '?'})", actor=actor)
    log.info("outbound %s to %s bounced (bounce item %s)", msg.id, msg.recipient, item_id)
    return True


def case_ref_of(session: Session, msg: OutboundMessage) -> str:
    case = session.get(Case, msg.case_id)
    if case is None:
        raise NotFound(f"the case of outbound message {msg.id} is gone")
    return case.ref
