"""Is this email automatic: a bounce (DSN), an auto-reply (RFC 3834, out-of-office), or bulk mail?"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from ingest.extract.email_headers import header_text, message_ids, raw_header

_DAEMONS = {"mailer-daemon", "postmaster", "mailerdaemon", "mail-daemon", "mdaemon", "poostmaster"}
_DAEMON_NAMES = re.compile(r"mail delivery (sub)?system|mailer[- ]daemon|postmaster", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification|failure notice|returned mail|"
    r"mail delivery failed|delivery failure|mail failure|delivery has failed|non[- ]?delivery|"
    r"could not be delivered|warning: could not send|delayed mail|delivery delay|"
    r"returned to sender|unzustellbar|non remis|não entregue|не доставлено|エラー",
    re.I,
)
_BOUNCE_BODY = re.compile(
    r"could not be delivered|couldn't be delivered|delivery to the following recipient|"
    r"undeliverable|permanent error|mailbox (is )?full|user unknown|no such user|"
    r"delivery has failed|returned to sender",
    re.I,
)
_MACHINE_SENDER = re.compile(r"^(no-?reply|do-?not-?reply|bounces?|mailer-daemon|postmaster)\b", re.I)
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto:|auto[- ]?reply|autoreply|auto[- ]?respon|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|risposta automatica|respuesta autom[aá]tica|"
    r"automatisch antwoord|resposta autom[aá]tica|vacation)",
    re.I,
)
_ORIGINAL_ID = re.compile(r"^[ \t>]*Message-ID:\s*(<[^>\s]+>)", re.I | re.M)


@dataclass(frozen=True)
class Flags:
    is_bounce: bool
    is_auto_reply: bool
    is_bulk: bool
    original_message_id: str | None


def _report_type(msg: Message) -> str | None:
    if msg.get_content_type() == "multipart/report":
        return (msg.get_param("report-type") or "").__str__().lower() or "unknown"
    return None


def _embedded_original_id(msg: Message) -> str | None:
    """Message-ID of the returned message (message/rfc822 or text/rfc822-headers part)."""
    for part in msg.walk():
        if part is msg:
            continue
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                ids = message_ids(raw_header(inner, "message-id"))
                if ids:
                    return ids[0]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers") or (
            ctype in ("message/rfc822", "message/global")
        ):
            if part.is_multipart():
                for block in part.get_payload():
                    if isinstance(block, Message):
                        ids = message_ids(raw_header(block, "message-id"))
                        if ids:
                            return ids[0]
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                match = _ORIGINAL_ID.search(payload.decode("utf-8", "replace"))
                if match:
                    return match.group(1)[1:-1]
    return None


def _looks_like_bounce(
    msg: Message, *, local: str, daemon: bool, null_sender: bool, subject: str, body: str, has_original: bool
) -> bool:
    """Non-standard bounces (no multipart/report): who sent it, what the subject and body say."""
    if raw_header(msg, "x-failed-recipients") is not None:
        return True
    subject_says = bool(_BOUNCE_SUBJECT.search(subject))
    body_says = bool(_BOUNCE_BODY.search(body[:5000]))
    machine = bool(_MACHINE_SENDER.match(local))
    if daemon and (subject_says or body_says):
        return True
    if (null_sender or machine) and subject_says and body_says:
        return True
    return machine and has_original and body_says


def classify(msg: Message, *, from_addr: str | None, from_name: str | None, subject: str, body: str) -> Flags:
    local = (from_addr or "").split("@", 1)[0].lower()
    daemon = local in _DAEMONS or bool(_DAEMON_NAMES.search(from_name or ""))
    null_sender = (raw_header(msg, "return-path") or "").strip() == "<>"
    auto_submitted = header_text(msg, "auto-submitted").lower()
    precedence = header_text(msg, "precedence").lower()
    report = _report_type(msg)
    original = _embedded_original_id(msg)

    is_bounce = report == "delivery-status"  # hard bounces and delay warnings alike: both are noise
    if not is_bounce and report is None:
        is_bounce = _looks_like_bounce(
            msg, local=local, daemon=daemon, null_sender=null_sender, subject=subject, body=body,
            has_original=original is not None,
        )

    is_auto_reply = (
        (report is not None and report != "delivery-status")  # MDN read receipts, ARF abuse reports
        or (bool(auto_submitted) and not auto_submitted.startswith("no"))
        or raw_header(msg, "x-autoreply") is not None
        or raw_header(msg, "x-autorespond") is not None
        or (raw_header(msg, "x-autogenerated") is not None and "reply" in header_text(msg, "x-autogenerated").lower())
        or precedence == "auto_reply"
        or bool(_AUTO_SUBJECT.match(subject))
    )
    is_bulk = (
        raw_header(msg, "list-id") is not None
        or raw_header(msg, "list-unsubscribe") is not None
        or precedence in ("bulk", "list", "junk")
    )
    if is_bounce and original is None:
        match = _ORIGINAL_ID.search(body)
        if match:
            original = match.group(1)[1:-1]
    if not is_bounce and is_auto_reply and original is None:
        replied = message_ids(raw_header(msg, "in-reply-to"))
        original = replied[0] if replied else None
    if not (is_bounce or is_auto_reply):
        original = None
    return Flags(is_bounce=is_bounce, is_auto_reply=is_auto_reply, is_bulk=is_bulk, original_message_id=original)
