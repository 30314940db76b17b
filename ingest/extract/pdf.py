"""PDF documents: the text layer of every page (pypdfium2), OCR for pages without a usable one."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pypdfium2 as pdfium
from PIL import Image

from ingest.errors import BadInput, LimitExceeded
from ingest.extract.context import ExtractContext
from ingest.extract.ocr import CORES, tesseract_path
from ingest.extract.ocr_words import combine
from ingest.extract.pdf_attachments import attachment_parts, embedded_files
from ingest.extract.pdf_forms import form_fields
from ingest.extract.pdfium_lock import PDFIUM
from ingest.extract.result import Extraction
from ingest.extract.scan_ocr import PageReading, read_pages

log = logging.getLogger(__name__)

_PASSWORD_ERROR = 4
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


def _open(data: bytes, ctx: ExtractContext) -> pdfium.PdfDocument:
    passwords: list[str | None] = [None] + [p.get_secret_value() for p in ctx.limits.pdf_passwords]
    last: pdfium.PdfiumError | None = None
    for password in passwords:
        try:
            with PDFIUM:
                doc = pdfium.PdfDocument(data, password=password)
                try:
                    doc.init_forms()
                except BaseException:
                    doc.close()  # here, under the lock, not later by a finaliser in another thread
                    raise
            return doc
        except pdfium.PdfiumError as exc:
            last = exc
            if getattr(exc, "err_code", None) != _PASSWORD_ERROR:
                break
    if last is not None and getattr(last, "err_code", None) == _PASSWORD_ERROR:
        raise BadInput(
            f"PDF is encrypted and no configured password opens it (tried the empty password and "
            f"{len(passwords) - 1} configured); ask the sender for an unprotected copy or the password"
        )
    raise BadInput(
        f"PDF is damaged and cannot be opened ({last}); ask the sender to export or scan it again"
    )


def _render(doc: pdfium.PdfDocument, number: int, dpi: int) -> Image.Image:
    """One page as a greyscale image (under the PDFium lock: pdfium is not thread-safe)."""
    with PDFIUM:
        page = doc[number]
        try:
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            try:
                image: Image.Image = bitmap.to_pil().copy()
            finally:
                bitmap.close()
        finally:
            page.close()
    image.info["dpi"] = (dpi, dpi)
    return image


def _ocr_pages(
    doc: pdfium.PdfDocument, pages: list[int], ctx: ExtractContext
) -> tuple[dict[int, PageReading], str | None]:
    """OCR of the given 0-based pages; the second value says why OCR did not run, if it did not.

    Pages are rendered a few at a time and OCRed concurrently (one tesseract process per core).
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
    readings: dict[int, PageReading] = {}
    todo = pages[:limit]
    batch = 2 * CORES
    for start in range(0, len(todo), batch):
        images = [(n + 1, _render(doc, n, ctx.limits.ocr_dpi)) for n in todo[start : start + batch]]
        for reading in read_pages(images, ctx.ocr_settings()):
            readings[reading.number - 1] = reading
            if reading.error:
                ctx.warn(f"page {reading.number}: {reading.error}")
    return readings, None


def extract_pdf(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    if not data:
        raise BadInput("empty file (0 bytes): nothing to read; ask the sender to resend")
    doc = _open(data, ctx)
    try:
        with PDFIUM:
            count = len(doc)
        if count > ctx.limits.max_pdf_pages:
            raise LimitExceeded(
                f"PDF has {count} pages, over the limit of {ctx.limits.max_pdf_pages} (max_pdf_pages); "
                "split it or raise the limit"
            )
        if count == 0:
            raise BadInput("PDF has no pages; ask the sender to export it again")
        texts: list[str] = []
        without_text: list[int] = []
        garbled: list[int] = []
        for number in range(count):
            with PDFIUM:
                page = doc[number]
                try:
                    textpage = page.get_textpage()
                    try:
                        text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
                    finally:
                        textpage.close()
                finally:
                    page.close()
            if len(text.strip()) < _MIN_PAGE_CHARS:
                without_text.append(number)
            elif is_garbled(text):
                garbled.append(number)
            texts.append(text)
        readings, ocr_missing = _ocr_pages(doc, sorted(without_text + garbled), ctx)
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
        if garbled:
            fields["pages_garbled"] = [n + 1 for n in garbled]
        if readings:
            fields["pages_ocr"] = sorted(n + 1 for n, t in ocr_texts.items() if t.strip())
            fields.update(combine([r.ocr for r in readings.values()]).fields())
            fields["ocr_pages"] = [readings[n].summary() for n in sorted(readings)]
        unread = [n + 1 for n in without_text + garbled if not ocr_texts.get(n, "").strip()]
        if unread:
            why = f" ({ocr_missing})" if ocr_missing else ""
            ctx.warn(f"PDF pages without usable text{why}: {_ranges(unread)}")
        try:
            with PDFIUM:
                values = form_fields(doc)
        except Exception as exc:  # form reading is a bonus; never lose the text for it
            log.warning("could not read PDF form fields of %s: %s", filename, exc)
            values = {}
        if values:
            fields["form"] = values
        with PDFIUM:
            embedded = embedded_files(doc, ctx)
        if embedded:
            fields["embedded_files"] = [f.name for f in embedded]
    finally:
        with PDFIUM:
            doc.close()
    text = "\f".join(t.strip("\n") for t in texts)
    error = None
    if not text.strip():
        error = "PDF has no text layer" + (f" and {ocr_missing}" if ocr_missing else " and OCR found no text")
    part = ctx.part(
        0, "page_set", text=text, error=error, filename=filename,
        content_type=content_type or "application/pdf", blob_sha256=blob, fields=fields,
    )
    return Extraction(parts=[part, *attachment_parts(embedded, 1, ctx)], warnings=ctx.warnings)


def _ranges(numbers: list[int]) -> str:
    numbers = sorted(set(numbers))
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], 0]:
        if n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(out)
