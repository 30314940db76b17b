"""Splitting a scanned batch (multi-page PDF or TIFF) into documents at separator pages.

With ``split="blank"`` a separator page is a blank one (less dark ink than ``blank_ink_ratio``
once the margins are cut off); with ``split="barcode"`` it is a page carrying a barcode whose
text is ``separator_barcode`` (paperless-ngx's ``PATCHT`` convention; blank pages, such as the
backs of duplex scans, then stay in their document). Barcodes are read with the ``zxing-cpp``
package (PDF pages rendered at 150 dpi for it); without that package a barcode separator cannot
be recognised and batches are not split (a warning says so).
Separator pages are dropped; a batch without separators is returned unchanged, so its
idempotency key stays the file's sha256.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageSequence

from ingest.errors import BadInput
from ingest.extract.limits import ExtractLimits
from ingest.extract.pdf_child import pdf_child
from ingest.extract.pdf_guard import MIB, check_streams
from ingest.extract.pdf_reader import RenderedPage
from ingest.extract.pdfium_lock import PDFIUM

log = logging.getLogger(__name__)

RENDER_DPI = {"blank": 50, "barcode": 150}
_warned_no_barcodes = False


@dataclass(frozen=True, slots=True)
class Segment:
    data: bytes
    pages: tuple[int, ...]  # 1-based page numbers of the batch
    ext: str


def ink_ratio(image: Image.Image, margin: float = 0.05) -> float:
    """Share of dark pixels (below 50% grey) inside the page, margins excluded."""
    gray = image.convert("L")
    w, h = gray.size
    box = (int(w * margin), int(h * margin), max(int(w * (1 - margin)), 1), max(int(h * (1 - margin)), 1))
    hist = gray.crop(box).histogram()
    total = sum(hist) or 1
    return sum(hist[:128]) / total


def _barcode_reader() -> Any:
    global _warned_no_barcodes
    try:
        import zxingcpp  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if not _warned_no_barcodes:
            log.warning("barcode separators need the zxing-cpp package, which is not installed; "
                        "only blank pages split batches")
            _warned_no_barcodes = True
        return None
    return zxingcpp


def has_separator_barcode(image: Image.Image, text: str) -> bool:
    reader = _barcode_reader()
    if reader is None:
        return False
    return any(getattr(b, "text", "") == text for b in reader.read_barcodes(image.convert("L")))


def is_separator(image: Image.Image, *, mode: str, blank_ink_ratio: float, barcode: str) -> bool:
    if mode == "barcode":
        return has_separator_barcode(image, barcode)
    return ink_ratio(image) < blank_ink_ratio


def _pdf_pages(data: bytes, dpi: int) -> Iterator[Image.Image | None]:
    """Each page in greyscale at ``dpi``, rendered by the memory-limited PDF reader child after the
    Flate check (a hostile batch is refused, never rendered here); None for a page too large to render."""
    limits = ExtractLimits()
    check_streams(data, max_stream_bytes=limits.max_pdf_stream_mb * MIB)
    child = pdf_child(limits.pdf_memory_mb)
    with tempfile.TemporaryDirectory(prefix="casework-batch-") as tmp:
        path = str(Path(tmp) / "batch.pdf")
        Path(path).write_bytes(data)
        for number in range(child.call("page_count", path=path)):
            page: RenderedPage = child.call("render_page", path=path, password=None, number=number, dpi=dpi,
                                            max_pixels=limits.max_render_pixels)
            if page.refused is not None:
                log.warning("scan batch page %d not checked for a separator: %s", number + 1, page.refused)
                yield None
                continue
            yield Image.frombuffer("L", (page.width, page.height), page.pixels, "raw", "L", 0, 1)


def _pdf_subset(data: bytes, pages: list[int]) -> bytes:
    import pypdfium2 as pdfium

    with PDFIUM:
        src = pdfium.PdfDocument(data)
        out = pdfium.PdfDocument.new()
        try:
            out.import_pages(src, [p - 1 for p in pages])
            buf = io.BytesIO()
            out.save(buf)
            return buf.getvalue()
        finally:
            out.close()
            src.close()


def _tiff_frames(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as img:
        return [frame.copy() for frame in ImageSequence.Iterator(img)]


def _tiff_subset(frames: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    bilevel = all(f.mode == "1" for f in frames)
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:],
                   compression="group4" if bilevel else "tiff_lzw")
    return buf.getvalue()


def split_batch(data: bytes, ext: str, *, mode: str, blank_ink_ratio: float = 0.003,
                barcode: str = "PATCHT") -> list[Segment]:
    """The documents in a batch; ``[Segment(data, all pages)]`` when there is nothing to split."""
    ext = ext.lower()
    if mode == "none" or ext not in (".pdf", ".tif", ".tiff") or (mode == "barcode" and _barcode_reader() is None):
        return [Segment(data, (), ext)]
    try:
        if ext == ".pdf":  # one page at a time: only its separator flag is kept
            frames: list[Image.Image] = []
            flags = [img is not None and is_separator(img, mode=mode, blank_ink_ratio=blank_ink_ratio,
                                                      barcode=barcode)
                     for img in _pdf_pages(data, RENDER_DPI.get(mode, 50))]
        else:
            frames = _tiff_frames(data)
            flags = [is_separator(img, mode=mode, blank_ink_ratio=blank_ink_ratio, barcode=barcode) for img in frames]
    except Exception as exc:
        raise BadInput(f"cannot read the scan batch to look for separator pages: {type(exc).__name__}: {exc}") \
            from None
    if not any(flags):
        return [Segment(data, tuple(range(1, len(flags) + 1)), ext)]
    groups: list[list[int]] = [[]]
    for number, sep in enumerate(flags, start=1):
        if sep:
            groups.append([])
        else:
            groups[-1].append(number)
    groups = [g for g in groups if g]
    log.info("scan batch of %d pages split into %d documents at %d separator pages", len(flags), len(groups),
             sum(flags))
    if ext == ".pdf":
        return [Segment(_pdf_subset(data, g), tuple(g), ext) for g in groups]
    return [Segment(_tiff_subset([frames[p - 1] for p in g]), tuple(g), ext) for g in groups]
