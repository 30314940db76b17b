"""TNEF (winmail.dat from Outlook/Exchange): the message body, then one Part per file inside."""

from __future__ import annotations

import logging

import tnefparse

from ingest.errors import BadInput
from ingest.extract.charsets import decode_text
from ingest.extract.context import ExtractContext
from ingest.extract.folding import fold
from ingest.extract.html import decode_html, html_to_text
from ingest.extract.result import Extraction
from ingest.extract.rtf import decompress_rtf, rtf_to_text
from ingest.extract.text import normalise_newlines
from ingest.messages import Part

log = logging.getLogger(__name__)


def _body(tnef: tnefparse.TNEF) -> str:
    if tnef.body:
        body = tnef.body
        return normalise_newlines(body if isinstance(body, str) else decode_text(body)[0])
    if tnef.htmlbody:
        html = tnef.htmlbody
        markup = html if isinstance(html, str) else decode_html(html)[0]
        return html_to_text(markup)
    if tnef.rtfbody:
        rtf = bytes(tnef.rtfbody)
        try:
            return rtf_to_text(decompress_rtf(rtf) if rtf[8:12] in (b"LZFu", b"MELA") else rtf)
        except ValueError as exc:
            log.info("rich-text body of winmail.dat not readable: %s", exc)
    return ""


def extract_tnef(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    try:
        tnef = tnefparse.TNEF(data)
    except Exception as exc:  # tnefparse raises bare ValueError/struct.error/IndexError on damage
        raise BadInput(f"TNEF (winmail.dat) is damaged ({type(exc).__name__}: {exc})") from None
    text = _body(tnef)
    body = ctx.part(0, "body", text=text, filename=filename, content_type="application/ms-tnef",
                    blob_sha256=blob, fields={"tnef": True},
                    error=None if text.strip() else "winmail.dat has no message body")
    parts: list[Part] = [body]
    for attachment in tnef.attachments[: ctx.limits.max_parts - 1]:
        name = attachment.long_filename() or attachment.name or None
        parts.append(fold(len(parts), "attachment", bytes(attachment.data), filename=name,
                          content_type=None, ctx=ctx))
    if len(tnef.attachments) > ctx.limits.max_parts - 1:
        ctx.warn(f"winmail.dat has more files than max_parts={ctx.limits.max_parts}; the rest were not read")
    return Extraction(parts=parts, warnings=ctx.warnings)
