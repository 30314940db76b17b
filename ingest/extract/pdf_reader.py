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
import re
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
    unreadable: list[int] = field(default_factory=list)  # 0-based pages PDFium could not load
    claimed: int | None = None  # the page count the file claims, when its page tree holds fewer


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
    if _cut_short(path):
        raise BadInput(f"PDF is cut short (no end-of-file marker) and cannot be opened ({last}); it was probably "
                       "truncated in transfer: ask the sender to send it again")
    raise BadInput(f"PDF is damaged and cannot be opened ({last}); ask the sender to export or scan it again")


_PAGES_NODE = re.compile(rb"<<[^<>]*?/Type\s*/Pages\b[^<>]*?>>")
_COUNT = re.compile(rb"/Count\s+(\d{1,20})")


def _stated_count(path: str) -> int:
    """The largest ``/Count`` of a page-tree node written in the file's plain text (0 if none is seen:
    nodes inside compressed object streams are not looked at). Only used to say what a file claims."""
    with open(path, "rb") as file:
        data = file.read()
    counts = [int(m.group(1)) for node in _PAGES_NODE.finditer(data) for m in _COUNT.finditer(node.group())]
    return max(counts, default=0)


def _cut_short(path: str) -> bool:
    """No ``%%EOF`` near the end: the file stops part-way (a full PDF ends with one, maybe with a few bytes after)."""
    with open(path, "rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - 1024))
        return b"%%EOF" not in file.read()


def _page_text(doc: pdfium.PdfDocument, number: int, max_chars: int) -> str | None:
    """The text layer of page ``number``; None when PDFium cannot load the page (a damaged page tree)."""
    with PDFIUM:
        try:
            page = doc[number]
        except pdfium.PdfiumError:
            return None
        try:
            textpage = page.get_textpage()
            try:
                text: str = textpage.get_text_range()
            finally:
                textpage.close()
        except pdfium.PdfiumError:
            return None
        finally:
            page.close()
    return text[: max_chars + 1].replace("\r\n", "\n").replace("\r", "\n")


def _loads(doc: pdfium.PdfDocument, number: int) -> bool:
    with PDFIUM:
        try:
            doc[number].close()
        except pdfium.PdfiumError:
            return False
    return True


def page_ranges(numbers: list[int]) -> str:
    """'2-5, 9' for [2, 3, 4, 5, 9]."""
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


def damage_report(count: int, unreadable: list[int], claimed: int | None) -> str | None:
    """What a person is told about pages that could not be read (None: every page was read).

    ``count`` is the pages looked at, ``unreadable`` their 0-based numbers that did not load, ``claimed``
    the count the file states when that is more than its page tree holds.
    """
    read = count - len(unreadable)
    if claimed is not None:
        text = f"PDF claims {claimed:,} pages; read {read}"
        return text + (f" (pages {page_ranges([n + 1 for n in unreadable])} unreadable)" if unreadable else "")
    if unreadable:
        return f"PDF page tree damaged: pages {page_ranges([n + 1 for n in unreadable])} of {count} unreadable"
    return None


def read_pdf(
    path: str, *, passwords: list[str | None], max_pages: int, max_text_chars: int, max_bytes: int, max_parts: int
) -> PdfReading:
    """Every page PDFium can load; the pages it cannot are listed in ``unreadable``, never fatal on their own.

    A page count over ``max_pages`` refuses the file only when the page after the limit really
    loads: a damaged or hostile file may state a count (2^31) that its page tree does not hold, and
    then the pages that load are read and the rest are named. Whether a page loads is decided by
    PDFium alone, so the same file always gives the same reading.
    """
    doc, password = open_pdf(path, passwords)
    try:
        with PDFIUM:
            count = len(doc)
        claimed: int | None = None
        if count > max_pages:
            if _loads(doc, max_pages):
                raise LimitExceeded(
                    f"PDF has {count:,} pages, over the limit of {max_pages} (max_pdf_pages); "
                    "split it or raise the limit"
                )
            claimed, count = count, max_pages
        if claimed is None and (stated := _stated_count(path)) > count:
            claimed = stated  # PDFium ignored a count over its own maximum and walked the tree instead
        if count == 0:
            raise BadInput("PDF has no pages; ask the sender to export it again")
        found = [_page_text(doc, n, max_text_chars) for n in range(count)]
        if claimed is not None:  # the pages after the last one that loads do not exist
            last = max((n for n, t in enumerate(found) if t is not None), default=-1)
            found = found[: last + 1]
        unreadable = [n for n, t in enumerate(found) if t is None]
        if len(unreadable) == len(found):
            raise BadInput(
                f"{damage_report(len(found), unreadable, claimed) if found else f'PDF claims {claimed:,} pages'}"
                ": no page of it can be read (its page tree is damaged); ask the sender to export or scan it again"
            )
        texts = [t or "" for t in found]
        form, form_error = {}, None
        try:
            with PDFIUM:
                form = form_fields(doc)
        except Exception as exc:  # form reading is a bonus; never lose the text for it
            form_error = f"{type(exc).__name__}: {exc}"
        warnings: list[str] = []
        damage = damage_report(len(found), unreadable, claimed)
        if damage:
            warnings.append(damage)
        try:
            with PDFIUM:
                embedded = embedded_files(doc, max_bytes=max_bytes, max_parts=max_parts, warnings=warnings)
        except pdfium.PdfiumError as exc:  # a damaged name tree: keep the pages
            embedded = []
            warnings.append(f"embedded files of this PDF could not be read ({exc})")
    finally:
        with PDFIUM:
            doc.close()
    return PdfReading(pages=len(texts), texts=texts, password=password, form=form, form_error=form_error,
                      embedded=embedded, warnings=warnings, unreadable=unreadable, claimed=claimed)


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
        try:
            with PDFIUM:
                width_pt, height_pt = doc.get_page_size(number)  # from the page tree: the content is not loaded
        except pdfium.PdfiumError:
            return RenderedPage(number=number, dpi=None, refused="page cannot be loaded (damaged page tree); not OCRed")
        used = render_dpi(width_pt, height_pt, dpi=dpi, max_pixels=max_pixels)
        if used is None:
            return RenderedPage(number=number, dpi=None, refused=(
                f"page is {describe_page(width_pt, height_pt, dpi)}, over max_render_pixels {max_pixels:,} "
                "even at 100 dpi; not rendered for OCR"))
        with PDFIUM:
            try:
                page = doc[number]
            except pdfium.PdfiumError:
                return RenderedPage(number=number, dpi=None, refused="page cannot be loaded (damaged page tree); "
                                    "not OCRed")
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
