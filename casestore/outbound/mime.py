"""The email we send, as bytes: headers for threading, the text, the attachments.

The same row always gives the same headers: Message-ID fixed when the message was queued, Date
the time it was queued, a MIME boundary made from the row's id.  ``In-Reply-To`` and
``References`` continue the customer's thread, and the subject carries the case reference, so
the reply comes back to the case through the matcher (thread first, reference second).  A
message the system sent by itself carries ``Auto-Submitted: auto-generated`` (RFC 3834), which
well-behaved auto-responders do not answer: half of the guard against mail loops (the daily
limit per recipient is the other).
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from casestore.outbound.outbox import Claimed

ReadBlob = Callable[[str], bytes]


def build_email(msg: Claimed, *, read_blob: ReadBlob) -> bytes:
    """The message as sent over SMTP (CRLF line ends)."""
    m = EmailMessage(policy=SMTP)
    m["From"] = msg.from_address
    m["To"] = msg.recipient
    m["Subject"] = msg.subject
    m["Date"] = format_datetime(msg.created_at)
    if msg.message_id:
        m["Message-ID"] = msg.message_id
    if msg.in_reply_to:
        m["In-Reply-To"] = msg.in_reply_to
    if msg.thread_ids:
        m["References"] = " ".join(msg.thread_ids)
    if msg.automatic:
        m["Auto-Submitted"] = "auto-generated"
    m["X-Casework-Case"] = msg.case_ref
    m.set_content(msg.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    for a in msg.attachments:
        maintype, _, subtype = str(a.get("content_type") or "application/octet-stream").partition("/")
        subtype = subtype.split(";")[0].strip() or "octet-stream"
        m.add_attachment(read_blob(str(a["blob_sha256"])), maintype=maintype.strip() or "application",
                         subtype=subtype, filename=str(a.get("filename") or "attachment"))
    if m.is_multipart():
        m.set_boundary(f"=_casework_{msg.id.replace('-', '')}")
    return m.as_bytes()
