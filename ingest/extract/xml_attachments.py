"""Base64 files embedded in XML (e-invoice attachments): decoded, stored and read as child parts."""

from __future__ import annotations

import base64
import binascii
import logging

from ingest.extract.context import ExtractContext
from ingest.extract.folding import fold
from ingest.extract.xml_invoice import EmbeddedFile
from ingest.messages import Part

log = logging.getLogger(__name__)


def _read(index: int, embedded: EmbeddedFile, ctx: ExtractContext) -> Part:
    fields = {"embedded_in": "xml"}
    if embedded.description:
        fields["description"] = embedded.description
    name, mime = embedded.filename, embedded.content_type
    payload = "".join(embedded.payload.split())
    if not payload:
        return ctx.part(index, "attachment", filename=name, content_type=mime, fields=fields,
                        error="embedded attachment is empty")
    if len(payload) // 4 * 3 > ctx.limits.max_bytes:
        return ctx.part(index, "attachment", filename=name, content_type=mime, fields=fields,
                        error=f"embedded attachment is larger than max_bytes ({ctx.limits.max_bytes:,}); not decoded")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        return ctx.part(index, "attachment", filename=name, content_type=mime, fields=fields,
                        error=f"embedded attachment is not valid base64 ({exc})")
    log.debug("embedded attachment %s (%s): %d bytes", name, mime, len(data))
    return fold(index, "attachment", data, filename=name, content_type=mime, ctx=ctx, fields=fields)


def attachment_parts(files: list[EmbeddedFile], start: int, ctx: ExtractContext) -> list[Part]:
    """Parts ``start``, ``start + 1``... for ``files``, within max_parts (the rest is named in a warning)."""
    room = max(ctx.limits.max_parts - start, 0)
    if len(files) > room:
        ctx.warn(f"only the first {room} of {len(files)} embedded attachments were read (max_parts)")
    return [_read(start + n, embedded, ctx) for n, embedded in enumerate(files[:room])]
