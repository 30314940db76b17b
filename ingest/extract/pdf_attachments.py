"""Files embedded in a PDF (Factur-X / ZUGFeRD invoice XML, other attachments): read as child parts."""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ingest.extract.context import ExtractContext
from ingest.extract.folding import fold
from ingest.messages import Part

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PdfEmbeddedFile:
    name: str | None
    content_type: str | None
    data: bytes = b""
    error: str | None = None


def _size(attachment: pdfium.PdfAttachment) -> int:
    """Decoded size of the embedded stream, asked of PDFium before any buffer is allocated here."""
    n_bytes = ctypes.c_ulong()
    pdfium_c.FPDFAttachment_GetFile(attachment, None, 0, n_bytes)
    return int(n_bytes.value)


def _one(doc: pdfium.PdfDocument, index: int, max_bytes: int) -> PdfEmbeddedFile:
    attachment = doc.get_attachment(index)
    try:
        name: str | None = attachment.get_name() or None
    except pdfium.PdfiumError:
        name = None
    subtype = attachment.get_subtype() or None
    content_type = None if subtype in (None, "application/octet-stream") else subtype
    size = _size(attachment)
    if size == 0:
        return PdfEmbeddedFile(name, content_type, error="embedded file is empty or cannot be decoded")
    if size > max_bytes:
        return PdfEmbeddedFile(name, content_type,
                               error=f"embedded file is {size:,} bytes, over max_bytes {max_bytes:,}")
    return PdfEmbeddedFile(name, content_type, data=bytes(attachment.get_data()))


def embedded_files(
    doc: pdfium.PdfDocument, *, max_bytes: int, max_parts: int, warnings: list[str]
) -> list[PdfEmbeddedFile]:
    """The document-level embedded files (PDF 1.7 section 7.11.4), at most max_parts - 1 of them."""
    count = doc.count_attachments()
    room = max(max_parts - 1, 0)
    if count > room:
        warnings.append(f"only the first {room} of {count} embedded files were read (max_parts)")
    found: list[PdfEmbeddedFile] = []
    for index in range(min(count, room)):
        try:
            found.append(_one(doc, index, max_bytes))
        except pdfium.PdfiumError as exc:
            found.append(PdfEmbeddedFile(None, None, error=f"embedded file {index + 1} cannot be read ({exc})"))
    return found


def attachment_parts(files: list[PdfEmbeddedFile], start: int, ctx: ExtractContext) -> list[Part]:
    """Parts ``start``, ``start + 1``... : each embedded file stored and read one level deeper."""
    parts: list[Part] = []
    for n, embedded in enumerate(files):
        index = start + n
        fields = {"embedded_in": "pdf"}
        if embedded.error is not None:
            parts.append(ctx.part(index, "attachment", filename=embedded.name, content_type=embedded.content_type,
                                  fields=fields, error=embedded.error))
            continue
        log.debug("PDF embedded file %s (%s): %d bytes", embedded.name, embedded.content_type, len(embedded.data))
        parts.append(fold(index, "attachment", embedded.data, filename=embedded.name,
                          content_type=embedded.content_type, ctx=ctx, fields=fields))
    return parts
