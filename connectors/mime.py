"""Packing an inbound message with attachments (MMS, web form uploads) into one MIME document.

The extract stage reads it like an email (body + attachments), so one inbound message stays
one item. There is no ``From`` header on purpose: the sender is not an email address, the
connector gives it in the item's metadata (``sender_phone``, ``sender_email``).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from ingest.messages import utcnow


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def pack(*, subject: str, message_id: str, body: str, attachments: list[Attachment],
         json_body: bytes | None = None) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg["Date"] = format_datetime(utcnow())
    msg["MIME-Version"] = "1.0"
    msg.set_content(body or "(no text)", charset="utf-8")
    if json_body is not None:
        msg.add_attachment(json_body, maintype="application", subtype="json", filename="fields.json")
    for a in attachments:
        maintype, _, subtype = (a.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(a.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=a.filename)
    return msg.as_bytes()
