"""PDF documents: the text layer of every page (pypdfium2), OCR for pages without a usable one."""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from ingest.errors import BadInput, LimitExceeded
from ingest.extract.context import ExtractContext
from ingest.extract.ocr import OcrError, OcrNotAvailable, ocr_file, tesseract_path
from ingest.extract.pdf_forms import form_fields
from ingest.extract.result import Extraction

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
            doc = pdfium.PdfDocument(data, password=password)
            doc.init_forms()
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


def _render_page_pgm(page: pdfium.PdfPage, dpi: int, path: Path) -> None:
    """Render one page to a greyscale PGM file (tesseract reads PNM; no imaging library needed)."""
    bitmap = page.render(scale=dpi / 72, grayscale=True)
    try:
        width, height, stride = bitmap.width, bitmap.height, bitmap.stride
        buffer = bytes(bitmap.buffer)
        rows = buffer if stride == width else b"".join(
            buffer[y * stride : y * stride + width] for y in range(height)
        )
        path.write_bytes(b"P5\n%d %d\n255\n" % (width, height) + rows)
    finally:
        bitmap.close()


def _ocr_pages(doc: pdfium.PdfDocument, pages: list[int], ctx: ExtractContext) -> tuple[dict[int, str], str | None]:
    """OCR text of the given 0-based pages; the second value says why OCR did not run, if it did not."""
    if not pages:
        return {}, None
    if not ctx.limits.ocr_enabled:
        return {}, "OCR is switched off (ocr_enabled=false)"
    if tesseract_path() is None:
        return {}, "OCR not available: install tesseract-ocr"
    limit = ctx.limits.max_ocr_pages
    if len(pages) > limit:
        ctx.warn(f"only the first {limit} of {len(pages)} pages without text were OCRed (max_ocr_pages)")
    texts: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="casework-pdf-") as tmp:
        for number in pages[:limit]:
            path = Path(tmp) / f"page-{number + 1}.pgm"
            page = doc[number]
            try:
                _render_page_pgm(page, ctx.limits.ocr_dpi, path)
            finally:
                page.close()
            try:
                texts[number] = ocr_file(
                    path,
                    language=ctx.limits.ocr_language,
                    timeout_seconds=ctx.limits.ocr_timeout_seconds,
                    memory_mb=ctx.limits.ocr_memory_mb,
                ).strip("\f\n ")
            except OcrNotAvailable as exc:
                return texts, str(exc)
            except OcrError as exc:
                ctx.warn(f"page {number + 1}: {exc}")
            finally:
                path.unlink(missing_ok=True)
    return texts, None


def extract_pdf(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    if not data:
        raise BadInput("empty file (0 bytes): nothing to read; ask the sender to resend")
    doc = _open(data, ctx)
    try:
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
        ocr_texts, ocr_missing = _ocr_pages(doc, sorted(without_text + garbled), ctx)
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
        if ocr_texts:
            fields["pages_ocr"] = sorted(n + 1 for n, t in ocr_texts.items() if t.strip())
        unread = [n + 1 for n in without_text + garbled if not ocr_texts.get(n, "").strip()]
        if unread:
            why = f" ({ocr_missing})" if ocr_missing else ""
            ctx.warn(f"PDF pages without usable text{why}: {_ranges(unread)}")
        try:
            values = form_fields(doc)
        except Exception as exc:  # form reading is a bonus; never lose the text for it
            log.warning("could not read PDF form fields of %s: %s", filename, exc)
            values = {}
        if values:
            fields["form"] = values
    finally:
        doc.close()
    text = "\f".join(t.strip("\n") for t in texts)
    error = None
    if not text.strip():
        error = "PDF has no text layer" + (f" and {ocr_missing}" if ocr_missing else " and OCR found no text")
    part = ctx.part(
        0, "page_set", text=text, error=error, filename=filename,
        content_type=content_type or "application/pdf", blob_sha256=blob, fields=fields,
    )
    return Extraction(parts=[part], warnings=ctx.warnings)


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
