"""PDF documents: the text layer of every page (pypdfium2), OCR for pages without a usable one.

Every PDFium call runs in the memory-limited PDF reader child (``pdf_child``, ``pdf_reader``) after
the in-process stream check (``pdf_guard``): a hostile PDF is refused with ``LimitExceeded`` and
never takes this process's memory. OCR (tesseract, with its own limits) runs here.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from ingest.errors import BadInput
from ingest.extract.capture_time import pdf_capture_time
from ingest.extract.context import ExtractContext
from ingest.extract.ocr import tesseract_path
from ingest.extract.ocr_words import combine
from ingest.extract.pdf_attachments import attachment_parts
from ingest.extract.pdf_child import pdf_child
from ingest.extract.pdf_guard import MIB, check_streams
from ingest.extract.pdf_reader import PdfReading, RenderedPage, page_ranges
from ingest.extract.result import Extraction
from ingest.extract.scan_ocr import PageReading, read_pages

log = logging.getLogger(__name__)
_MIN_PAGE_CHARS = 16


def is_garbled(text: str) -> bool:
    """A text layer that is present but unreadable: broken font encodings ('Agaaaaa: AAAA ...')."""
    letters = [c.lower() for c in text if c.isalpha()]
    if len(letters) < 60:
        return False
    counts = Counter(letters)
    top_share = counts.most_common(1)[0][1] / len(letters)
    odd = sum(1 for c in text if c == "\ufffd" or 0xE000 <= ord(c) <= 0xF8FF or (ord(c) < 32 and c not in "\n\r\t\f"))
    return top_share > 0.35 or len(counts) < 6 or odd > len(text) // 10


def _passwords(ctx: ExtractContext) -> list[str | None]:
    return [None] + [p.get_secret_value() for p in ctx.limits.pdf_passwords]


def _rendered(page: RenderedPage) -> Image.Image:
    image = Image.frombuffer("L", (page.width, page.height), page.pixels, "raw", "L", 0, 1)
    image.info["dpi"] = (page.dpi, page.dpi)
    return image


def _ocr_pages(
    path: str, password: str | None, pages: list[int], ctx: ExtractContext
) -> tuple[dict[int, PageReading], str | None]:
    """OCR of the given 0-based pages; the second value says why OCR did not run, if it did not.

    Pages are rendered a few at a time by the PDF reader child (within ``max_render_pixels``) and
    OCRed concurrently here (``ocr_processes`` tesseract processes, default one per core).
    """
    if not pages:
        return {}, None
    if not ctx.limits.ocr_enabled:
        return {}, "OCR is switched off (ocr_enabled=false)"
    if tesseract_path() is None:
        return {}, "OCR not available: install tesseract-ocr"
    limit = ctx.limits.max_ocr_pages
    if len(pages) > limit:
        ctx.warn(f"only the first {limit} of {len(pages)} pages without text were OCRed (max_ocr_pages)")
    child = pdf_child(ctx.limits.pdf_memory_mb)
    dpi = ctx.limits.ocr_dpi
    readings: dict[int, PageReading] = {}

    def rendered() -> Iterator[tuple[int, Image.Image]]:
        """Each page rendered by the PDF reader child when the OCR pool is ready for it."""
        for number in pages[:limit]:
            page: RenderedPage = child.call("render_page", path=path, password=password, number=number, dpi=dpi,
                                            max_pixels=ctx.limits.max_render_pixels)
            if page.refused is not None:
                readings[number] = PageReading(number=number + 1, error=page.refused)
                ctx.warn(f"page {number + 1}: {page.refused} (max_render_pixels)")
                continue
            if page.dpi != dpi:
                ctx.warn(f"page {number + 1} rendered for OCR at {page.dpi} dpi, not {dpi}, to stay within "
                         f"max_render_pixels {ctx.limits.max_render_pixels:,}")
            yield number + 1, _rendered(page)

    for reading in read_pages(rendered(), ctx.ocr_settings()):
        readings[reading.number - 1] = reading
        if reading.error:
            ctx.warn(f"page {reading.number}: {reading.error}")
    return readings, None


def _read(data: bytes, ctx: ExtractContext) -> tuple[PdfReading, dict[int, PageReading], str | None]:
    """The text pass and the OCR of pages without usable text, both by the PDF reader child."""
    check_streams(data, max_stream_bytes=ctx.limits.max_pdf_stream_mb * MIB)
    with tempfile.TemporaryDirectory(prefix="casework-pdf-") as tmp:
        path = str(Path(tmp) / "item.pdf")
        Path(path).write_bytes(data)
        child = pdf_child(ctx.limits.pdf_memory_mb)
        reading: PdfReading = child.call(
            "read_pdf", path=path, passwords=_passwords(ctx), max_pages=ctx.limits.max_pdf_pages,
            max_text_chars=ctx.limits.max_text_chars, max_bytes=ctx.limits.max_bytes, max_parts=ctx.limits.max_parts,
        )
        unusable = [n for n, text in enumerate(reading.texts) if n not in reading.unreadable
                    and (len(text.strip()) < _MIN_PAGE_CHARS or is_garbled(text))]
        readings, ocr_missing = _ocr_pages(path, reading.password, unusable, ctx)
    return reading, readings, ocr_missing


def extract_pdf(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    if not data:
        raise BadInput("empty file (0 bytes): nothing to read; ask the sender to resend")
    reading, readings, ocr_missing = _read(data, ctx)
    count = reading.pages
    texts = list(reading.texts)
    without_text = [n for n, t in enumerate(texts) if len(t.strip()) < _MIN_PAGE_CHARS and n not in reading.unreadable]
    garbled = [n for n, t in enumerate(texts) if len(t.strip()) >= _MIN_PAGE_CHARS and is_garbled(t)]
    for warning in reading.warnings:
        ctx.warn(warning)
    ocr_texts = {n: r.ocr.text.strip("\f\n ") for n, r in readings.items()}
    for number, text in ocr_texts.items():
        if text.strip():
            texts[number] = text
            if is_garbled(text):
                ctx.warn(f"page {number + 1}: text layer and OCR both look garbled (broken font?)")
    fields: dict[str, Any] = {
        "pages": count,
        "pages_without_text": [n + 1 for n in without_text],
    }
    if reading.unreadable:
        fields["pages_unreadable"] = [n + 1 for n in reading.unreadable]
    if reading.claimed is not None:
        fields["pages_claimed"] = reading.claimed
    if garbled:
        fields["pages_garbled"] = [n + 1 for n in garbled]
    if readings:
        fields["pages_ocr"] = sorted(n + 1 for n, t in ocr_texts.items() if t.strip())
        fields.update(combine([r.ocr for r in readings.values()]).fields())
        fields["ocr_pages"] = [readings[n].summary() for n in sorted(readings)]
    unread = [n + 1 for n in without_text + garbled if not ocr_texts.get(n, "").strip()]
    if unread:
        why = f" ({ocr_missing})" if ocr_missing else ""
        ctx.warn(f"PDF pages without usable text{why}: {page_ranges(unread)}")
    if reading.form_error:
        log.warning("could not read PDF form fields of %s: %s", filename, reading.form_error)
    if reading.form:
        fields["form"] = reading.form
    embedded = reading.embedded
    if embedded:
        fields["embedded_files"] = [f.name for f in embedded]
    if (captured := pdf_capture_time(data)) is not None:
        fields["captured_at"] = captured.isoformat()  # CreationDate: a scanner's capture time
    text = "\f".join(t.strip("\n") for t in texts)
    error = None
    if not text.strip():
        refused = next((r.error for r in readings.values() if r.error), None)
        error = "PDF has no text layer and " + (ocr_missing or (f"OCR failed: {refused}" if refused else
                                                               "OCR found no text"))
    part = ctx.part(
        0, "page_set", text=text, error=error, filename=filename,
        content_type=content_type or "application/pdf", blob_sha256=blob, fields=fields,
    )
    return Extraction(parts=[part, *attachment_parts(embedded, 1, ctx)], warnings=ctx.warnings)

