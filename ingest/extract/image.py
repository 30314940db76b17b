"""Images (PNG, JPEG, TIFF, GIF, BMP): one page_set Part whose text comes from OCR."""

from __future__ import annotations

import logging
import struct

from ingest.extract.context import ExtractContext
from ingest.extract.ocr import OcrError, ocr_bytes
from ingest.extract.result import Extraction

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


def ocr_image_text(data: bytes, ctx: ExtractContext) -> tuple[str, str | None, dict[str, object]]:
    """(text, error, fields) for one image; the error says why there is no text."""
    fmt, suffix = image_format(data)
    fields: dict[str, object] = {"format": fmt}
    size = image_size(data)
    if size:
        fields["width"], fields["height"] = size
        if size[0] * size[1] < ctx.limits.min_ocr_pixels or min(size) < 16:
            return "", f"image too small to hold readable text ({size[0]}x{size[1]} px); not OCRed", fields
    if not ctx.limits.ocr_enabled:
        return "", "OCR is switched off (ocr_enabled=false); image stored unread", fields
    try:
        text = ocr_bytes(
            data,
            suffix=suffix,
            language=ctx.limits.ocr_language,
            timeout_seconds=ctx.limits.ocr_timeout_seconds,
            memory_mb=ctx.limits.ocr_memory_mb,
        )
    except OcrError as exc:
        return "", str(exc), fields
    fields["ocr"] = True
    text = text.strip("\f\n ")
    if not text.strip():
        return "", "OCR found no text in the image", fields
    return text, None, fields


def extract_image(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    text, error, fields = ocr_image_text(data, ctx)
    part = ctx.part(
        0, "page_set", text=text, error=error, filename=filename,
        content_type=content_type or f"image/{fields['format']}", blob_sha256=blob, fields=fields,
    )
    return Extraction(parts=[part], warnings=ctx.warnings)
