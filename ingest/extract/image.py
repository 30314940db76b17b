"""Images (PNG, JPEG, TIFF incl. multi-page faxes, GIF, BMP): one page_set Part whose text comes from OCR."""

from __future__ import annotations

import itertools
import logging
import struct
import tempfile
from pathlib import Path
from typing import Any

from ingest.extract.capture_time import image_capture_time
from ingest.extract.context import ExtractContext
from ingest.extract.ocr import OcrError, ocr_words
from ingest.extract.ocr_words import combine
from ingest.extract.result import Extraction
from ingest.extract.scan_ocr import PageReading, read_pages
from ingest.extract.scan_prep import ImageTooLarge, ImageUnreadable, open_frames

log = logging.getLogger(__name__)


def image_format(data: bytes) -> tuple[str, str]:
    """(format name, file suffix tesseract understands)."""
    if data.startswith(b"\x89PNG"):
        return "png", ".png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg", ".jpg"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff", ".tif"
    if data.startswith(b"GIF8"):
        return "gif", ".gif"
    if data.startswith(b"BM"):
        return "bmp", ".bmp"
    if data.startswith(b"RIFF"):
        return "webp", ".webp"
    return "unknown", ".img"


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header of PNG, GIF and JPEG files; None if not found cheaply."""
    try:
        if data.startswith(b"\x89PNG") and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data.startswith(b"GIF8"):
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data.startswith(b"\xff\xd8"):
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                    i += 1 if marker == 0xFF else 2
                    continue
                length = struct.unpack(">H", data[i + 2 : i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + length
    except struct.error:
        return None
    return None


def _ocr_undecodable(data: bytes, suffix: str, ctx: ExtractContext, why: str) -> tuple[str, str | None]:
    """Pillow could not decode it: hand the file to tesseract (leptonica) as it is."""
    try:
        with tempfile.TemporaryDirectory(prefix="casework-ocr-") as tmp:
            path = Path(tmp) / f"image{suffix}"
            path.write_bytes(data)
            ocr = ocr_words(path, ctx.ocr_settings())
    except OcrError as exc:
        return "", f"{why}; {exc}"
    return ocr.text, None if ocr.text.strip() else f"{why}; OCR found no text"


def ocr_image_text(data: bytes, ctx: ExtractContext) -> tuple[str, str | None, dict[str, Any]]:
    """(text, error, fields) for one image file, all its pages; the error says why there is no text."""
    fmt, suffix = image_format(data)
    fields: dict[str, Any] = {"format": fmt}
    size = image_size(data)
    if size:
        fields["width"], fields["height"] = size
        if size[0] * size[1] < ctx.limits.min_ocr_pixels or min(size) < 16:
            return "", f"image too small to hold readable text ({size[0]}x{size[1]} px); not OCRed", fields
    if not ctx.limits.ocr_enabled:
        return "", "OCR is switched off (ocr_enabled=false); image stored unread", fields
    try:
        fmt_name, count, frames = open_frames(data, max_pixels=ctx.limits.max_image_pixels,
                                              max_page_pixels=ctx.limits.max_render_pixels,
                                              max_bytes=ctx.limits.max_image_mb * 2**20)
        first = next(frames, None)
    except ImageTooLarge as exc:
        return "", str(exc), fields
    except ImageUnreadable as exc:
        log.info("Pillow cannot decode a %s image (%s); trying tesseract on the file", fmt, exc)
        text, error = _ocr_undecodable(data, suffix, ctx, str(exc))
        fields["ocr"] = True
        return text.strip(), error, fields
    fields["format"] = fmt_name if fmt == "unknown" else fmt
    fields["pages"] = count
    if first is not None and "width" not in fields:
        fields["width"], fields["height"] = first.size
    limit = ctx.limits.max_ocr_pages
    if count > limit:
        ctx.warn(f"only the first {limit} of {count} image pages were OCRed (max_ocr_pages)")
    # decoded as they are read: a 50-page TIFF is never all in memory, and its pages share every core
    pages = itertools.chain([(1, first)] if first is not None and limit > 0 else [],
                            zip(range(2, limit + 1), frames, strict=False))
    readings: list[PageReading] = []
    try:
        for reading in read_pages(pages, ctx.ocr_settings()):
            readings.append(reading)
    except ImageUnreadable as exc:
        ctx.warn(f"image pages after page {len(readings)} were not read: {exc}")
    fields["ocr"] = True
    fields.update(combine([r.ocr for r in readings]).fields())
    if len(readings) == 1:
        fields.update(readings[0].notes)
    else:
        fields["ocr_pages"] = [r.summary() for r in readings]
    for reading in readings:
        if reading.error:
            ctx.warn(f"page {reading.number}: {reading.error}")
    text = "\f".join(r.ocr.text.strip("\f\n ") for r in readings)
    if not text.strip():
        errors = [r.error for r in readings if r.error]
        return "", errors[0] if len(errors) == len(readings) and errors else "OCR found no text in the image", fields
    return text, None, fields


def extract_image(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    text, error, fields = ocr_image_text(data, ctx)
    if (captured := image_capture_time(data)) is not None:
        fields["captured_at"] = captured.isoformat()  # when the scanner made it
    part = ctx.part(
        0, "page_set", text=text, error=error, filename=filename,
        content_type=content_type or f"image/{fields['format']}", blob_sha256=blob, fields=fields,
    )
    return Extraction(parts=[part], warnings=ctx.warnings)
