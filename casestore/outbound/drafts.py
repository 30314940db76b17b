"""A draft: what a message to a case's customer will say, to whom, from whom, in which thread.

``compose`` is shared by the preview and by ``queue_message``, so what the agent previews is
what is queued.  It reads only: the case, its customer, the case's earlier messages (for the
thread and the allowed recipients) and its documents (attachments).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.utils import parseaddr
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.errors import InvalidInput, NotFound
from casestore.models import Case, Document, Item
from casestore.outbound import segments
from casestore.outbound.errors import RecipientProblem, TemplateProblem
from casestore.outbound.templates import Rendered, Templates, check_channel, split_subject
from casestore.validation import normalise_email

MAX_THREAD_IDS = 20
MAX_SUBJECT_CHARS = 300
MAX_BODY_CHARS = 100_000
MAX_ATTACHMENTS = 20
_SMS_OK_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
                 phonenumbers.PhoneNumberType.UNKNOWN)


@dataclass(frozen=True)
class OutboxPolicy:
    """What the composition root decides for outbound messages (from CASEWORK_OUTBOUND__*)."""

    from_address: str = ""  # default From: of email, e.g. "Casework <cases@example.com>"
    team_from: Mapping[str, str] = field(default_factory=dict)  # team -> From: address
    signature: str = ""  # the organisation's name under a message
    team_signature: Mapping[str, str] = field(default_factory=dict)
    sms_from: str = ""  # the Twilio number SMS come from
    message_id_domain: str = ""  # empty: the domain of the From address
    phone_region: str = "GB"  # numbers written without +country
    rate_limit_per_day: int = 20  # messages to one recipient in 24 hours; 0: no limit
    max_sms_segments: int = 10
    letter_return_address: str = ""  # the one small line above the address in the window


@dataclass(frozen=True)
class Attachment:
    document_id: int
    filename: str
    content_type: str
    blob_sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "filename": self.filename, "content_type": self.content_type,
                "blob_sha256": self.blob_sha256}


@dataclass(frozen=True)
class Draft:
    case_ref: str
    channel: str
    template: str | None
    recipient: str  # email address, E.164 number, or the addressee's name (letters)
    recipient_key: str  # normalised: "email:..", "sms:+44..", "letter:<customer id>"
    postal_address: str | None
    from_address: str
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str | None = None
    thread_ids: tuple[str, ...] = ()
    sms: segments.SmsCount | None = None


def subject_with_token(subject: str, ref: str) -> str:
    """The subject with the case reference as thread token (``... [CW-2025-000123-K]``), once."""
    clean = " ".join(subject.split())
    return clean if ref in clean else f"{clean} [{ref}]".strip()


def bracketed(message_id: str) -> str:
    bare = message_id.strip().strip("<>").strip()
    return f"<{bare}>" if bare else ""


def message_id_for(outbound_id: str, *, policy: OutboxPolicy, from_address: str) -> str:
    """Our Message-ID for an outbox row: fixed when it is queued, unguessable (the row's uuid)."""
    domain = policy.message_id_domain or parseaddr(from_address)[1].rpartition("@")[2] or "casework.invalid"
    return f"<{outbound_id}@{domain}>"


def from_for(case: Case, policy: OutboxPolicy) -> str:
    return policy.team_from.get(case.team or "", "") or policy.from_address


def sms_number(value: str, *, region: str) -> str:
    """E.164 form of a number a customer can get an SMS on; RecipientProblem for what is not a
    phone number or is known to be a landline."""
    try:
        parsed = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException:
        raise RecipientProblem(f"{value!r} is not a phone number; correct the customer's mobile number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise RecipientProblem(f"{value!r} is not a possible phone number; correct the customer's mobile number")
    # A number the numbering plan knows as a landline cannot take an SMS; one it does not know
    # (new ranges, test ranges) is left to the provider, whose refusal flags it.
    if phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) not in _SMS_OK_TYPES:
        raise RecipientProblem(f"{value!r} is not a mobile number (it cannot receive SMS); "
                               "ask the customer for a mobile number or write by email or letter")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class _Earlier:
    """What a draft needs of an item already in the case (read as columns, not ORM objects)."""

    item_id: str
    channel: str
    direction: str
    sender: str | None
    message_id: str


def _case_items(session: Session, case: Case) -> list[_Earlier]:
    rows = session.execute(
        select(Item.item_id, Item.channel, Item.direction, Item.sender, Item.meta["message_id"].as_string())
        .where(Item.case_id == case.id, Item.channel.in_(("email", "sms")))
        .order_by(Item.received_at, Item.item_id))
    return [_Earlier(i, c, d, s, bracketed(m or "")) for i, c, d, s, m in rows]


def _thread(items: Sequence[_Earlier], reply_to_item: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) for an email reply: the item answered (the latest inbound email
    with a Message-ID unless one is named) and the case's earlier Message-IDs, oldest first."""
    emails = [(i, i.message_id) for i in items if i.channel == "email" and i.message_id]
    parent: str | None = None
    if reply_to_item:
        named = [mid for i, mid in emails if i.item_id == reply_to_item]
        if not named:
            raise NotFound(f"item {reply_to_item!r} is not an email with a Message-ID in this case; "
                           "name an email of the case folder, or leave it out to answer the latest one")
        parent = named[0]
    else:
        inbound = [mid for i, mid in emails if i.direction == "in"]
        parent = inbound[-1] if inbound else None
    ids = list(dict.fromkeys(mid for _, mid in emails))
    if parent is not None:  # the parent last, as RFC 5322 orders References
        ids = [m for m in ids if m != parent] + [parent]
    return parent, tuple(ids[-MAX_THREAD_IDS:])


def _earlier_senders(items: Sequence[_Earlier], channel: str) -> list[str]:
    """Who wrote into the case on this channel (inbound only), newest first."""
    found = [i.sender.strip() for i in reversed(items) if i.direction == "in" and i.channel == channel and i.sender]
    return list(dict.fromkeys(found))


def _email_recipient(case: Case, items: Sequence[_Earlier], to: str | None) -> str:
    customer_email = case.customer.email if case.customer else None
    allowed = [a for a in (customer_email, *_earlier_senders(items, "email")) if a]
    allowed_keys = {parseaddr(a)[1].lower() for a in allowed}
    if to:
        address = normalise_email(parseaddr(to)[1] or to) or ""
        if address not in allowed_keys:
            raise InvalidInput(f"{address} is neither the customer's address nor someone who wrote into this case; "
                               f"reply to one of: {', '.join(sorted(allowed_keys)) or 'nobody (no address known)'}")
        return address
    if not allowed:
        raise RecipientProblem(f"case {case.ref} has no email address to reply to (the customer has none and "
                               "nobody wrote in by email); add it in the CRM, or reply by letter")
    return parseaddr(allowed[0])[1].lower()


def _sms_recipient(case: Case, items: Sequence[_Earlier], to: str | None, region: str) -> str:
    customer_phone = case.customer.phone if case.customer else None
    allowed = [n for n in (customer_phone, *_earlier_senders(items, "sms")) if n]
    if to:
        number = sms_number(to, region=region)
        known = set()
        for n in allowed:
            try:
                known.add(sms_number(n, region=region))
            except RecipientProblem:
                continue
        if number not in known:
            raise InvalidInput(f"{number} is neither the customer's mobile number nor one that wrote into this case")
        return number
    if not allowed:
        raise RecipientProblem(f"case {case.ref} has no mobile number to send an SMS to; add the customer's "
                               "mobile number in the CRM, or reply by email or letter")
    return sms_number(allowed[0], region=region)


def _postal(case: Case) -> tuple[str, str]:
    customer = case.customer
    if customer is None or not (customer.address or "").strip():
        raise RecipientProblem(f"case {case.ref} has no postal address (the customer has none, or is not known); "
                               "add the address in the CRM, or reply by email")
    lines = [customer.name.strip()]
    lines += [part.strip() for part in re.split(r"[\n,]", customer.address or "") if part.strip()]
    postcode = (customer.postcode or "").strip()
    if postcode and postcode.replace(" ", "").upper() not in "".join(lines).replace(" ", "").upper():
        lines.append(postcode)
    return customer.name.strip(), "\n".join(lines)


def _attachments(session: Session, case: Case, document_ids: Sequence[int]) -> tuple[Attachment, ...]:
    wanted = list(dict.fromkeys(int(d) for d in document_ids))
    if len(wanted) > MAX_ATTACHMENTS:
        raise InvalidInput(f"{len(wanted)} attachments; at most {MAX_ATTACHMENTS} go with one email")
    if not wanted:
        return ()
    docs = {d.id: d for d in session.scalars(select(Document).where(Document.id.in_(wanted),
                                                                    Document.case_id == case.id))}
    out: list[Attachment] = []
    for doc_id in wanted:
        doc = docs.get(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id} is not in the folder of case {case.ref}; attach documents of this case")
        if not doc.blob_sha256:
            raise InvalidInput(f"document {doc_id} has no stored file to attach (it is text extracted from a "
                               "message); attach the message's file instead")
        out.append(Attachment(doc_id, doc.filename or f"document-{doc_id}", doc.content_type or
                              "application/octet-stream", doc.blob_sha256))
    return tuple(out)


def context(case: Case, *, actor: str, policy: OutboxPolicy, fields: Mapping[str, str]) -> dict[str, Any]:
    """What a template sees: plain values only (see ``templates``)."""
    customer = case.customer
    return {
        "case": {"ref": case.ref, "subject": case.subject or "", "case_type": case.case_type, "status": case.status,
                 "team": case.team or "", "opened_at": case.opened_at.date().isoformat() if case.opened_at else ""},
        "customer": None if customer is None else {
            "customer_id": customer.customer_id, "name": customer.name, "email": customer.email or "",
            "phone": customer.phone or "", "address": customer.address or "", "postcode": customer.postcode or "",
            "account_number": customer.account_number or ""},
        "agent": {"name": actor},
        "team": {"name": case.team or "", "from_address": from_for(case, policy),
                 "signature": policy.team_signature.get(case.team or "", "") or policy.signature},
        "today": date.today().strftime("%d %B %Y").lstrip("0"),
        "fields": {str(k): str(v) for k, v in fields.items()},
    }


def compose(session: Session, *, case: Case, channel: str, actor: str, policy: OutboxPolicy,
            templates: Templates | None, template: str | None, fields: Mapping[str, str] | None = None,
            subject: str | None = None, body: str | None = None, to: str | None = None,
            attachments: Sequence[int] = (), reply_to_item: str | None = None) -> Draft:
    """The draft of one message; ``body`` (and ``subject`` for email) is the agent's edited text and
    wins over the template.  InvalidInput, RecipientProblem or TemplateProblem say what to fix."""
    channel = check_channel(channel)
    if body is None and not template:
        raise InvalidInput("say what to send: a template, or the text itself (body)")
    rendered: Rendered
    if body is not None:
        if channel == "email" and subject is None:
            rendered = split_subject(body)  # an edited file: "Subject: ..." then the body
        else:
            rendered = Rendered(subject=subject or "", body=body.strip("\n") + "\n")
    else:
        if templates is None:
            raise TemplateProblem("no templates are configured here; pass the text itself")
        rendered = templates.render(str(template), case_type=case.case_type, channel=channel,
                                    context=context(case, actor=actor, policy=policy, fields=fields or {}))
        if subject is not None:
            rendered = Rendered(subject=subject, body=rendered.body)
    if not rendered.body.strip():
        raise InvalidInput("the message is empty; write something")
    if len(rendered.body) > MAX_BODY_CHARS:
        raise InvalidInput(f"the message is {len(rendered.body)} characters long; the limit is {MAX_BODY_CHARS}")
    items = _case_items(session, case)
    if channel != "email" and attachments:
        raise InvalidInput("attachments go by email only; send the documents by email, or enclose them by hand")
    if channel == "email":
        recipient = _email_recipient(case, items, to)
        sender = from_for(case, policy)
        if not sender:
            raise InvalidInput("no From address for email: set CASEWORK_OUTBOUND__FROM_ADDRESS (or "
                               "CASEWORK_OUTBOUND__TEAM_FROM for this case's team)")
        if not rendered.subject.strip():
            raise InvalidInput("an email needs a subject")
        in_reply_to, thread_ids = _thread(items, reply_to_item)
        subject_line = subject_with_token(rendered.subject, case.ref)[:MAX_SUBJECT_CHARS]
        return Draft(case.ref, channel, template, recipient, f"email:{recipient}", None, sender, subject_line,
                     rendered.body, _attachments(session, case, attachments), in_reply_to, thread_ids)
    if channel == "sms":
        number = _sms_recipient(case, items, to, policy.phone_region)
        text = rendered.body.strip()
        counted = segments.count(text)
        if counted.segments > policy.max_sms_segments:
            raise InvalidInput(f"the SMS would take {counted.segments} segments ({counted.units} {counted.encoding} "
                               f"units); the limit is {policy.max_sms_segments}: shorten it, or write by email")
        return Draft(case.ref, channel, template, number, f"sms:{number}", None, policy.sms_from, "", text + "\n",
                     sms=counted)
    if to:
        raise InvalidInput("a letter goes to the customer's postal address from the CRM; leave 'to' out")
    name, postal = _postal(case)
    customer_id = case.customer.customer_id if case.customer else ""
    title = rendered.subject or f"Letter about {case.subject or case.ref}"
    return Draft(case.ref, channel, template, name, f"letter:{customer_id}", postal,
                 policy.letter_return_address, title[:MAX_SUBJECT_CHARS], rendered.body)
