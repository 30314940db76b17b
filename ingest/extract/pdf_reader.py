"""Everything casework asks of PDFium about one PDF, as two calls that run in the memory-limited child.

``read_pdf`` opens the file (trying the configured passwords), reads every page's text layer, the
form field values and the embedded files; ``render_page`` renders one page in greyscale for OCR,
at a DPI that keeps it within ``max_pixels`` (``pdf_guard.render_dpi``), checked before the page
is loaded. Both take the path of the PDF (PDFium reads it from disk as it needs it) and return
plain data that ``ingest.extract.pdf_child`` sends back to the parent. ``ingest.extract.pdf`` is
the caller; nothing here touches the blob store or the extract context.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pypdfium2 as pdfium

from ingest.errors import BadInput, LimitExceeded
from ingest.extract.pdf_attachments import PdfEmbeddedFile, embedded_files
from ingest.extract.pdf_forms import form_fields
from ingest.extract.pdf_guard import describe_page, render_dpi
from ingest.extract.pdfium_lock import PDFIUM

log = logging.getLogger(__name__)

_PASSWORD_ERROR = 4


@dataclass(frozen=True)
class PdfReading:
    """What the text pass found: page count, one text per page, form values, embedded files."""

    pages: int
    texts: list[str]
    password: str | None = None  # the password that opened it (None: no password needed)
    form: dict[str, str] = field(default_factory=dict)
    form_error: str | None = None
    embedded: list[PdfEmbeddedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RenderedPage:
    """One page as 8-bit greyscale pixels (``pixels`` is ``width * height`` bytes), or why it was not rendered."""

    number: int  # 0-based
    dpi: int | None
    width: int = 0
    height: int = 0
    pixels: bytes = b""
    refused: str | None = None


def open_pdf(path: str, passwords: list[str | None]) -> tuple[pdfium.PdfDocument, str | None]:
    """The document with its form environment, and the password that opened it."""
    last: pdfium.PdfiumError | None = None
    for password in passwords:
        try:
            with PDFIUM:
                doc = pdfium.PdfDocument(path, password=password)
                try:
                    doc.init_forms()
                except BaseException:
                    doc.close()
                    raise
            return doc, password
        except pdfium.PdfiumError as exc:
            last = exc
            if getattr(exc, "err_code", None) != _PASSWORD_ERROR:
                break
    if last is not None and getattr(last, "err_code", None) == _PASSWORD_ERROR:
        raise BadInput(
            f"PDF is encrypted and no configured password opens it (tried the empty password and "
            f"{len(passwords) - 1} configured); ask the sender for an unprotected copy or the password"
        )
    raise BadInput(f"PDF is damaged and cannot be opened ({last}); ask the sender to export or scan it again")


def _page_text(doc: pdfium.PdfDocument, number: int, max_chars: int) -> str:
    with PDFIUM:
        page = doc[number]
        try:
            textpage = page.get_textpage()
            try:
                text: str = textpage.get_text_range()
            finally:
                textpage.close()
        finally:
            page.close()
    return text[: max_chars + 1].replace("\r\n", "\n").replace("\r", "\n")


def read_pdf(
    path: str, *, passwords: list[str | None], max_pages: int, max_text_chars: int, max_bytes: int, max_parts: int
) -> PdfReading:
    doc, password = open_pdf(path, passwords)
    try:
        with PDFIUM:
            count = len(doc)
        if count > max_pages:
            raise LimitExceeded(
                f"PDF has {count} pages, over the limit of {max_pages} (max_pdf_pages); split it or raise the limit"
            )
        if count == 0:
            raise BadInput("PDF has no pages; ask the sender to export it again")
        texts = [_page_text(doc, n, max_text_chars) for n in range(count)]
        form, form_error = {}, None
        try:
            with PDFIUM:
                form = form_fields(doc)
        except Exception as exc:  # form reading is a bonus; never lose the text for it
            form_error = f"{type(exc).__name__}: {exc}"
        warnings: list[str] = []
        with PDFIUM:
            embedded = embedded_files(doc, max_bytes=max_bytes, max_parts=max_parts, warnings=warnings)
    finally:
        with PDFIUM:
            doc.close()
    return PdfReading(pages=count, texts=texts, password=password, form=form, form_error=form_error,
                      embedded=embedded, warnings=warnings)


def page_count(path: str, *, password: str | None = None) -> int:
    doc, _ = open_pdf(path, [password])
    try:
        with PDFIUM:
            return len(doc)
    finally:
        with PDFIUM:
            doc.close()


def render_page(path: str, *, password: str | None, number: int, dpi: int, max_pixels: int) -> RenderedPage:
    """Page ``number`` (0-based) in greyscale at ``dpi``, or lower to stay within ``max_pixels``."""
    doc, _ = open_pdf(path, [password])
    try:
        with PDFIUM:
            width_pt, height_pt = doc.get_page_size(number)  # from the page tree: the content is not loaded
        used = render_dpi(width_pt, height_pt, dpi=dpi, max_pixels=max_pixels)
        if used is None:
            return RenderedPage(number=number, dpi=None, refused=(
                f"page is {describe_page(width_pt, height_pt, dpi)}, over max_render_pixels {max_pixels:,} "
                "even at 100 dpi; not rendered for OCR"))
        with PDFIUM:
            page = doc[number]
            try:
                bitmap = page.render(scale=used / 72, grayscale=True)
                try:
                    image = bitmap.to_pil()
                    pixels = image.tobytes()
                    width, height = image.size
                finally:
                    bitmap.close()
            finally:
                page.close()
    finally:
        with PDFIUM:
            doc.close()
    return RenderedPage(number=number, dpi=used, width=width, height=height, pixels=pixels)
