"""Is this email automatic: a bounce (DSN), an auto-reply (RFC 3834, out-of-office), or bulk mail?
And did a mail filter on the way in call it spam (``spam_verdict``)?"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from ingest.extract.email_headers import header_text, message_ids, raw_header, raw_headers

_DAEMONS = {"mailer-daemon", "postmaster", "mailerdaemon", "mail-daemon", "mdaemon", "poostmaster"}
_DAEMON_NAMES = re.compile(
    r"mail delivery (sub)?system|mailer[- ]daemon|postmaster|mail ?delivery ?service|delivery status|"
    r"system administrator|mail ?system", re.I)
# Senders that are programs, not people: MTAs, gateways, virus walls, list servers' bounce handlers.
_MACHINE_SENDER = re.compile(
    r"^(no-?reply|do-?not-?reply|bounces?|mailer-?daemon|postmaster|mail[._-]?delivery[._-]?(system|service)?|"
    r"ndr|mail[._-]?daemon|smtp|[\w.-]*smtp[_.-]?(mail)?[_.-]?service|[\w.-]*anti-?virus[\w.-]*|imss|"
    r"inetgw\d*|mail[._-]?(gateway|gw)|sms[._-]?(gateway|gw)|[\w.-]*-(bounces|owner|admin))\b", re.I)
# Subjects of delivery failures and delays, in the languages MTAs write them in.
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status|delivery report|failure notice|returned mail|"
    r"mail delivery failed|delivery failure|mail failure|delivery has failed|non[- ]?delivery|"
    r"could not be delivered|(mail|message) not delivered|not been delivered|warning: could not send|"
    r"delayed mail|delivery delay|message (has been )?delayed|delivery warning|returned to sender|"
    r"failed delivery|failure delivery|delivery failed|failed mail|mail failed|mail error|"
    r"automatically rejected|rejected mail|message rejected|returned message|"
    r"unzustellbar|nicht zugestellt|zustellung fehlgeschlagen|non remis|non délivré|échec de (la )?remise|"
    r"no se pudo entregar|error de entrega|mancata consegna|non recapitat|não entregue|falha na entrega|"
    r"onbestelbaar|niet afgeleverd|не доставлено|недоставлен|niedostarcz|"
    r"投递失败|传输失败|退信|未送达|无法投递|配信エラー|不達|配信できません|エラー",
    re.I,
)
# What the text of a delivery failure says: MTA phrasing, in several languages, and SMS gateways'.
_BOUNCE_BODY = re.compile(
    r"could not be delivered|couldn't be delivered|cannot be delivered|can ?not be delivered|"
    r"was not delivered|were not delivered|not delivered to|unable to deliver|could not deliver|"
    r"delivery to the following recipient|did not reach the following recipient|failed recipient|"
    r"following (address|recipient)\(?e?s?\)? (failed|could not)|permanent (error|failure)|"
    r"mailbox (is )?(full|unavailable)|user unknown|unknown user|no such (user|recipient|address)|"
    r"recipient address rejected|delivery has failed|returned to sender|has been returned|"
    r"has been postponed|not yet been delivered|has been delayed|still being retried|"
    r"message (was )?(automatically )?rejected|returned mail follows|i wasn't able to deliver|"
    r"this is the mail system at host|qmail-send program|"
    r"konnte nicht zugestellt werden|n'a pas pu (ê|e)tre (remis|d(é|e)livr)|"
    r"no (se )?(ha )?pud?o (ser )?entrega|non (è|e) stat[oa] possibile recapitare|"
    r"não foi possível entregar|kon niet (worden )?bezorgd|не (может быть )?доставлен|"
    r"无法投递|未能送达|投递失败|配信できません|送信できませんでした|"
    r"(sms|text message) (could not be|was not|not) delivered|invalid (mobile|phone) number",
    re.I,
)
_SMTP_STATUS = re.compile(
    r"\b[45]\.\d{1,3}\.\d{1,3}\b|\b(550|551|552|553|554|450|451|452)[ -]|remote host said|"
    r"to the following (user|recipient|address)|non-delivery report|rcpt to:", re.I)
_ORIGINAL_MARKER = re.compile(
    r"original message|returned mail|header of the source mail|message follows|non-delivered message|"
    r"original mail|below this line|first \d+ lines", re.I)
_QUOTED_HEADERS = re.compile(r"^[ \t>]*(From|To|Subject|Date|Message-ID):[^\n]*\n"
                             r"(?:[^\n]*\n){0,3}?[ \t>]*(From|To|Subject|Date|Message-ID):", re.I | re.M)
_STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")
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
    spam_verdict: str | None = None


# What the common mail filters write when they judge a message spam, as ``(header, pattern)``:
# SpamAssassin (X-Spam-Flag, X-Spam-Status), rspamd's milter (X-Spam, X-Rspamd-Action), Microsoft
# 365 / Exchange Online Protection (spam confidence level 5-9; the spam filter verdict SFV:SPM),
# Barracuda.  Only "spam" verdicts count: a header saying "no" is ignored, so a sender cannot talk
# its way in, and one claiming "yes" only sends its own mail to noise.
_SPAM_HEADERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("X-Spam-Flag", re.compile(r"^\s*yes\b", re.I)),
    ("X-Spam-Status", re.compile(r"^\s*yes\b", re.I)),
    ("X-Spam", re.compile(r"^\s*(yes|true)\b", re.I)),
    ("X-Rspamd-Action", re.compile(r"^\s*(reject|add header|rewrite subject)\b", re.I)),
    ("X-MS-Exchange-Organization-SCL", re.compile(r"^\s*[5-9]\s*$")),
    ("X-Forefront-Antispam-Report", re.compile(r"(^|;)\s*SFV:SPM\s*(;|$)", re.I)),
    ("X-Barracuda-Spam-Status", re.compile(r"^\s*yes\b", re.I)),
)


def spam_verdict(msg: Message) -> str | None:
    """The first spam verdict a mail filter wrote into the headers, as ``"Header: value"`` for the
    evidence (value shortened), or None."""
    for name, says_spam in _SPAM_HEADERS:
        for value in raw_headers(msg, name):
            flat = " ".join(value.split())
            if says_spam.search(flat):
                return f"{name}: {flat[:80]}"
    return None


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


def _delivery_status_part(msg: Message) -> bool:
    """An RFC 3464 delivery-status part anywhere (some MTAs send it in multipart/mixed, or in a
    multipart/report with no report-type)."""
    return any(part.get_content_type() in _STATUS_PARTS for part in msg.walk())


def _rejected_mdn(msg: Message, report: str | None, auto_submitted: str) -> bool:
    """A delivery agent's refusal sent as a disposition notification (Dovecot/Sieve 'rejected')."""
    if "rejected" in auto_submitted:
        return True
    if report != "disposition-notification":
        return False
    for part in msg.walk():
        if part.get_content_type() == "message/disposition-notification":
            payload = part.get_payload()
            text = payload if isinstance(payload, str) else " ".join(str(p) for p in payload)
            return bool(re.search(r"disposition:[^\n]*(deleted|failed|denied)", text, re.I))
    return False


def _looks_like_bounce(
    msg: Message, *, local: str, daemon: bool, null_sender: bool, subject: str, body: str, has_original: bool,
    auto_generated: bool,
) -> bool:
    """Bounces without a delivery-status part: by structure first (failed-recipients header, null
    sender, a machine sender, the original quoted back), then by what subject and body say.  Words
    alone never make a bounce: a customer may well write "my parcel could not be delivered"."""
    if raw_header(msg, "x-failed-recipients") is not None:
        return True
    # The body's patterns are long case-insensitive alternations (most of reading a plain mail's
    # CPU): each is searched only when the answer can still depend on it.
    subject_says = bool(_BOUNCE_SUBJECT.search(subject))
    machine = daemon or bool(_MACHINE_SENDER.match(local))
    if not (subject_says or daemon or null_sender or machine or auto_generated):
        return False  # a person's mail is a bounce only when its subject says so too (the last rule)
    head = body[:5000]
    body_says = bool(_BOUNCE_BODY.search(head))
    if not (subject_says or body_says):
        return False  # every rule below needs one of them to say so
    if daemon or null_sender:
        return True
    mta_detail = bool(_SMTP_STATUS.search(head))
    quoted = has_original or (bool(_ORIGINAL_MARKER.search(head)) and bool(_QUOTED_HEADERS.search(body[:20000])))
    if (machine or auto_generated) and ((subject_says and body_says) or quoted or mta_detail):
        return True  # a courier's no-reply "Delivery failed" about a parcel needs more than its subject
    # a person's address forwarding a notice (cloud mail services forward a bounce as a message)
    return subject_says and body_says and (quoted or mta_detail)


def classify(msg: Message, *, from_addr: str | None, from_name: str | None, subject: str, body: str) -> Flags:
    local = (from_addr or "").split("@", 1)[0].lower()
    daemon = local in _DAEMONS or bool(_DAEMON_NAMES.search(from_name or "")) or bool(
        re.search(r"\b(postmaster|mailer-daemon)\b", raw_header(msg, "from") or "", re.I))
    null_sender = (raw_header(msg, "return-path") or "x").strip() in ("<>", "") or (
        from_addr is None and "<>" in (raw_header(msg, "from") or ""))
    auto_submitted = header_text(msg, "auto-submitted").lower()
    precedence = header_text(msg, "precedence").lower()
    report = _report_type(msg)
    original = _embedded_original_id(msg)

    # hard bounces and delay warnings alike: both are noise
    is_bounce = report == "delivery-status" or _delivery_status_part(msg) or _rejected_mdn(msg, report, auto_submitted)
    if not is_bounce and report in (None, "unknown"):
        is_bounce = _looks_like_bounce(
            msg, local=local, daemon=daemon, null_sender=null_sender, subject=subject, body=body,
            has_original=original is not None, auto_generated=auto_submitted.startswith("auto-generated"),
        )

    is_auto_reply = (
        (report is not None and not is_bounce)  # MDN read receipts, ARF abuse reports
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
    return Flags(is_bounce=is_bounce, is_auto_reply=is_auto_reply, is_bulk=is_bulk, original_message_id=original,
                 spam_verdict=spam_verdict(msg))
