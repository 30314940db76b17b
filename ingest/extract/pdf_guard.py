"""Checks on a PDF made before PDFium allocates for it: stream inflation and rendered page size.

PDFium inflates a Flate stream whole when it reads it (a page's content stream as soon as the page
is loaded), so a 2 MiB file whose stream inflates to 2 GiB takes 2 GiB or more. ``check_streams``
inflates every zlib stream of the file incrementally (``zlib.decompressobj`` with ``max_length``,
the output thrown away as it comes) and refuses the file at the first stream that passes the cap.
It reads the raw bytes without a PDF parser: a stream whose data is encrypted or behind another
filter first (ASCII85, ASCIIHex) is not measured here, nor what a second Flate filter inflates the
first one's output to; the memory limit of the child process that runs PDFium
(``ingest.extract.pdf_child``) is the backstop for those. A file too small for any stream to pass the
cap at deflate's largest ratio (1032 to 1) is not scanned at all.

``render_dpi`` bounds a rendered page by pixels, not inches: the size PDFium renders is the page's
box in PDF units at ``dpi / 72`` pixels per unit. PDFium ignores ``/UserUnit`` (a page of 720 units
with ``/UserUnit 20``, 200 inches on paper, renders as 10 inches), so the pixel count computed
here is what is allocated whatever ``/UserUnit`` says.
"""

from __future__ import annotations

import math
import re
import zlib

from ingest.errors import LimitExceeded

MIB = 1024 * 1024
MIN_RENDER_DPI = 100  # below this OCR reads little; a page that would need less is not rendered
DEFLATE_MAX_RATIO = 1032  # deflate's limit: 258 bytes from one 2-bit code, and no more

_STREAM = re.compile(rb"stream(?:\r\n|\n|\r)")
_CHUNK_IN = 64 * 1024
_CHUNK_OUT = 1 * MIB


def _zlib_header(head: bytes) -> bool:
    return len(head) == 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


def inflated_size(data: bytes | memoryview, start: int, limit: int) -> int:
    """Bytes the zlib stream at ``data[start:]`` inflates to, counting stops just past ``limit``.

    A stream that is cut short or damaged counts what inflated before the damage (PDFium keeps that too).
    """
    view = memoryview(data)
    inflater = zlib.decompressobj()
    total = 0
    position = start
    try:
        while position < len(view) and not inflater.eof:
            pending = bytes(view[position : position + _CHUNK_IN])
            position += len(pending)
            while pending and not inflater.eof:
                total += len(inflater.decompress(pending, _CHUNK_OUT))
                if total > limit:
                    return total
                pending = inflater.unconsumed_tail
    except zlib.error:
        pass
    return total


def check_streams(data: bytes, *, max_stream_bytes: int) -> None:
    """Refuse (``LimitExceeded``) a PDF with a Flate stream that inflates to more than ``max_stream_bytes``."""
    if len(data) * DEFLATE_MAX_RATIO <= max_stream_bytes:
        return  # no stream of a file this small can inflate past the cap (most PDFs: nothing to inflate here)
    view = memoryview(data)
    number = 0
    for match in _STREAM.finditer(data):
        before = data[max(0, match.start() - 8) : match.start()].rstrip()
        if not before.endswith(b">>"):
            continue  # "endstream", or the word inside some text
        start = match.end()
        if not _zlib_header(data[start : start + 2]):
            continue
        number += 1
        size = inflated_size(view, start, max_stream_bytes)
        if size > max_stream_bytes:
            raise LimitExceeded(
                f"PDF stream {number} (Flate, at byte {start:,}) inflates to more than {max_stream_bytes // MIB:,} MiB "
                f"from a {len(data):,}-byte file (max_pdf_stream_mb); refused as a decompression bomb. "
                "If the file is genuine, ask the sender for a simpler export or raise max_pdf_stream_mb"
            )


def render_dpi(width_pt: float, height_pt: float, *, dpi: int, max_pixels: int) -> int | None:
    """The DPI to render a page of this size at: ``dpi``, or less so that it stays within ``max_pixels``;
    None when even ``MIN_RENDER_DPI`` would be over (or the page has no area)."""
    if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
        return None
    area = width_pt * height_pt / (72 * 72)  # square inches at 72 units per inch, as PDFium renders
    if area * dpi * dpi <= max_pixels:
        return dpi
    fitted = math.floor(math.sqrt(max_pixels / area))
    return fitted if fitted >= MIN_RENDER_DPI else None


def describe_page(width_pt: float, height_pt: float, dpi: int) -> str:
    """'200 x 200 in (60,000 x 60,000 px at 300 dpi)' for messages."""
    w_px, h_px = round(width_pt * dpi / 72), round(height_pt * dpi / 72)
    return f"{width_pt / 72:,.4g} x {height_pt / 72:,.4g} in ({w_px:,} x {h_px:,} px at {dpi} dpi)"
