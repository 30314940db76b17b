"""Outlook .msg files (OLE2 compound files with MAPI properties): headers, body, then one Part per attachment.

The header fields come from the transport headers Outlook keeps (PR_TRANSPORT_MESSAGE_HEADERS) and are
read by the same code as RFC 5322 mail; without them they are built from the MAPI properties.
"""

from __future__ import annotations

import io
import logging
from email.message import EmailMessage

import olefile

from ingest.errors import BadInput
from ingest.extract.charsets import decode_text
from ingest.extract.context import ExtractContext
from ingest.extract.email import email_headers, parse_message
from ingest.extract.folding import fold
from ingest.extract.html import decode_html, html_to_text
from ingest.extract.result import Extraction
from ingest.extract.rtf import decompress_rtf, rtf_to_text
from ingest.extract.text import normalise_newlines
from ingest.messages import Part

log = logging.getLogger(__name__)

_SUBJECT, _HEADERS, _BODY, _HTML = "0037", "007D", "1000", "1013"
_SENDER_NAME, _SENDER_EMAIL, _SENDER_SMTP = "0C1A", "0C1F", "5D01"
_TO, _CC, _MESSAGE_ID, _IN_REPLY_TO = "0E04", "0E03", "1035", "1042"
_ATTACH_DATA, _LONG_NAME, _SHORT_NAME, _MIME = "3701", "3707", "3704", "370E"


def is_outlook_msg(data: bytes) -> bool:
    if not data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return False
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except OSError:
        return False
    try:
        return any(e[0].startswith("__substg1.0_") for e in ole.listdir())
    finally:
        ole.close()


class _Properties:
    """MAPI properties stored as streams ``__substg1.0_TTTTYYYY`` under one storage."""

    def __init__(self, ole: olefile.OleFileIO, prefix: list[str]) -> None:
        self.ole = ole
        self.prefix = prefix

    def raw(self, tag: str, kind: str) -> bytes | None:
        path = [*self.prefix, f"__substg1.0_{tag}{kind}"]
        if not self.ole.exists("/".join(path)):
            return None
        data: bytes = self.ole.openstream(path).read()
        return data

    def text(self, tag: str) -> str:
        unicode = self.raw(tag, "001F")
        if unicode is not None:
            return unicode.decode("utf-16-le", "replace").rstrip("\x00")
        legacy = self.raw(tag, "001E")
        return decode_text(legacy)[0].rstrip("\x00") if legacy is not None else ""


def _body(props: _Properties) -> str:
    plain = props.text(_BODY)
    if plain.strip():
        return normalise_newlines(plain)
    html = props.raw(_HTML, "0102") or props.raw(_HTML, "001F")
    if html:
        return html_to_text(decode_html(html)[0])
    rtf = props.raw("1009", "0102")  # PR_RTF_COMPRESSED
    if rtf:
        try:
            return rtf_to_text(decompress_rtf(rtf))
        except ValueError as exc:
            log.info("rich-text body of .msg not readable: %s", exc)
    return ""


def _header_message(props: _Properties) -> EmailMessage:
    headers = props.text(_HEADERS)
    if headers.strip():
        msg = parse_message(headers.strip().encode("utf-8") + b"\n\n")
        if isinstance(msg, EmailMessage):
            return msg
    msg = EmailMessage()
    sender = props.text(_SENDER_SMTP) or props.text(_SENDER_EMAIL)
    name = props.text(_SENDER_NAME)
    for header, value in (
        ("From", f'"{name}" <{sender}>' if name and sender and name != sender else sender),
        ("To", props.text(_TO)), ("Cc", props.text(_CC)), ("Subject", props.text(_SUBJECT)),
        ("Message-ID", props.text(_MESSAGE_ID)), ("In-Reply-To", props.text(_IN_REPLY_TO)),
    ):
        if value.strip():
            try:
                msg[header] = value.strip()
            except (ValueError, TypeError) as exc:
                log.debug("MAPI property for %s not usable as a header: %s", header, exc)
    return msg


def extract_outlook_msg(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except OSError as exc:
        raise BadInput(f"Outlook .msg file is damaged ({exc})") from None
    try:
        props = _Properties(ole, [])
        body_text = _body(props)
        msg = _header_message(props)
        headers = email_headers(msg, body_text, None)
        parts: list[Part] = [ctx.part(
            0, "body", text=body_text, content_type="text/plain", blob_sha256=blob,
            fields={"outlook_msg": True},
            error=None if body_text.strip() else "Outlook message has no text body",
        )]
        storages = sorted({e[0] for e in ole.listdir() if e[0].startswith("__attach_version1.0_")})
        for storage in storages[: ctx.limits.max_parts - 1]:
            attachment = _Properties(ole, [storage])
            name = attachment.text(_LONG_NAME) or attachment.text(_SHORT_NAME) or None
            mime = attachment.text(_MIME) or None
            payload = attachment.raw(_ATTACH_DATA, "0102")
            if payload is None:
                parts.append(ctx.part(len(parts), "attachment", filename=name, content_type=mime,
                                      error="embedded Outlook item or OLE object; stored with the message unread"))
                continue
            parts.append(fold(len(parts), "attachment", payload, filename=name, content_type=mime, ctx=ctx))
    finally:
        ole.close()
    return Extraction(parts=parts, email=headers, warnings=ctx.warnings)
