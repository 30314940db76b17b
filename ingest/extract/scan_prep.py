"""Getting a scanned page ready for OCR with Pillow: square pixels, a credible DPI, skew removed.

Fax pages come at 204x98 dpi (each pixel twice as tall as wide) and are stretched vertically;
pages over 400 dpi are scaled down to 300 (OCR is no better and four times slower at 600);
a DPI tag that cannot be true (72 dpi on a 4000-pixel page) is dropped, so tesseract
estimates the resolution from the text height. Skew is found by projection profiles on a
small copy of the page (``ingest.extract.skew``) and corrected on the full page when it is
over a degree.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageSequence

log = logging.getLogger(__name__)

_MIN_DPI, _MAX_DPI, _TARGET_DPI = 100, 400, 300
_MAX_PAGE_INCHES = 20  # a page longer than this at the tagged DPI means the tag is wrong
_SKEW_RANGE = 5.0  # degrees searched either way
# smaller angles are left alone: tesseract's line finding reads such pages as well (every word of
# generated letters at 0.75-1.5 degrees, BENCHMARKS.md 15.10), and turning a page costs ~20-30 ms
# and makes tesseract's own work a few % longer; at 2 degrees and more it can lose whole lines
_MIN_SKEW = 1.25
_PROBE_SIZE = 500  # long side of the copy used to measure skew


class ImageUnreadable(Exception):
    """Pillow could not decode the image; the message says why."""


class ImageTooLarge(ImageUnreadable):
    """The image is over max_image_pixels or max_image_mb: not decoded at all (decompression-bomb guard)."""


@dataclass(frozen=True)
class PreparedPage:
    """A page image ready for tesseract, and what was done to it."""

    image: Image.Image
    dpi: int | None  # None: unknown, tesseract estimates it
    notes: dict[str, object]


def _decoded_bytes(image: Image.Image) -> int:
    bits = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}.get(image.mode, 8 * len(image.getbands()))
    return image.size[0] * image.size[1] * bits // 8


def open_frames(
    data: bytes, *, max_pixels: int, max_page_pixels: int | None = None, max_bytes: int | None = None
) -> tuple[str, int, Iterator[Image.Image]]:
    """(format, page count, pages) of an image file; each page is decoded when reached and handed
    out in greyscale (or bitonal), so only one full-colour page is in memory at a time. Each page handed
    out is the caller's to close (``read_page`` does), also after the pages run out.

    ``max_pixels`` and ``max_bytes`` (decoded size) refuse larger pages undecoded; a JPEG larger than
    ``max_page_pixels`` is decoded at a reduced scale (libjpeg's draft mode), never at full size.
    """
    Image.MAX_IMAGE_PIXELS = None  # our own check below, with a message
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageUnreadable(f"image cannot be decoded ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} pixels, over max_image_pixels {max_pixels:,}; not OCRed"
        )
    if max_bytes and _decoded_bytes(image) > max_bytes and (image.format != "JPEG" or not max_page_pixels):
        raise ImageTooLarge(
            f"image is {width}x{height} pixels in {image.mode}, {_decoded_bytes(image) / 2**20:,.0f} MiB decoded, "
            f"over max_image_mb {max_bytes // 2**20:,}; not OCRed (decompression-bomb guard)"
        )
    count = int(getattr(image, "n_frames", 1))

    def frames() -> Iterator[Image.Image]:
        lent = False  # a one-page image is handed out itself: its reader closes it, perhaps after this ends
        try:
            for frame in ImageSequence.Iterator(image):
                if frame.size[0] * frame.size[1] > max_pixels:
                    raise ImageTooLarge(
                        f"a page of {frame.size[0]}x{frame.size[1]} pixels is over max_image_pixels"
                    )
                if max_bytes and _decoded_bytes(frame) > max_bytes and (frame.format != "JPEG" or not max_page_pixels):
                    raise ImageTooLarge(f"a page of {frame.size[0]}x{frame.size[1]} pixels in {frame.mode} is "
                                          f"over max_image_mb {max_bytes // 2**20:,}")
                info = dict(frame.info)
                if max_page_pixels and frame.format == "JPEG" and frame.size[0] * frame.size[1] > max_page_pixels:
                    factor = math.ceil(math.sqrt(frame.size[0] * frame.size[1] / max_page_pixels))
                    frame.draft("L", (frame.size[0] // factor, frame.size[1] // factor))
                try:
                    frame.load()
                except (OSError, ValueError) as exc:
                    raise ImageUnreadable(f"image page cannot be decoded ({exc})") from None
                page = _greyscale(frame)
                if page is frame and count > 1:
                    page = page.copy()  # the next page is decoded into ``frame``
                page.info = info
                lent = lent or page is image
                yield page
        finally:
            if not lent:
                image.close()

    return str(image.format or "unknown").lower(), count, frames()


def _tagged_dpi(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    if not isinstance(dpi, tuple) or len(dpi) != 2:
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 1 and y > 1 else None


def _greyscale(image: Image.Image) -> Image.Image:
    if image.mode in ("1", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        image = background
    return image.convert("L")


def normalise(image: Image.Image, *, max_pixels: int | None = None) -> PreparedPage:
    """Square pixels, 100-400 dpi, greyscale or bitonal, at most ``max_pixels``; the DPI tesseract should be told."""
    notes: dict[str, object] = {}
    image = _greyscale(image)
    tagged = _tagged_dpi(image)
    dpi: float | None = None
    if tagged:
        x, y = tagged
        if abs(x / y - 1) > 0.1:  # fax "normal" resolution: 204x98
            image = image.convert("L").resize((image.width, round(image.height * x / y)), Image.Resampling.LANCZOS)
            notes["aspect_corrected"] = f"{x:g}x{y:g} dpi"
        dpi = x
        if max(image.size) / dpi > _MAX_PAGE_INCHES or dpi < _MIN_DPI:
            notes["dpi_ignored"] = f"{x:g} dpi tag does not fit a {image.width}x{image.height} px page"
            dpi = None
    if dpi and dpi > _MAX_DPI:
        scale = _TARGET_DPI / dpi
        image = image.convert("L").resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
        notes["downscaled_from_dpi"] = round(dpi)
        dpi = _TARGET_DPI
    if max_pixels and image.width * image.height > max_pixels:
        factor = math.ceil(math.sqrt(image.width * image.height / max_pixels))
        notes["reduced_by"] = factor  # tesseract's time and memory grow with the pixels it is given
        image = image.convert("L").reduce(factor)
        dpi = dpi / factor if dpi else None
    return PreparedPage(image=image, dpi=round(dpi) if dpi else None, notes=notes)


def estimate_skew(image: Image.Image) -> float:
    """Angle (degrees, counter-clockwise) that makes text lines level; 0.0 when none is clearly better
    or when it is under ``_MIN_SKEW``."""
    from ingest.extract.skew import measure_skew  # numpy: imported with the first scan, not at start-up

    angle = measure_skew(image, probe_size=_PROBE_SIZE, search=_SKEW_RANGE)
    return 0.0 if abs(angle) < _MIN_SKEW else angle


def deskew(page: PreparedPage) -> PreparedPage:
    angle = estimate_skew(page.image)
    if not angle:
        return page
    # bitonal pages are turned as they are (nearest neighbour): converting them costs more than it gains
    bitonal = page.image.mode == "1"
    turned = page.image.rotate(
        angle, resample=Image.Resampling.NEAREST if bitonal else Image.Resampling.BILINEAR,
        expand=True, fillcolor=1 if bitonal else 255,
    )
    return PreparedPage(image=turned, dpi=page.dpi, notes={**page.notes, "deskewed_degrees": angle})


def turn(page: PreparedPage, clockwise: int) -> PreparedPage:
    """The page turned by a multiple of 90 degrees (lossless)."""
    steps = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
    method = steps.get(clockwise % 360)
    if method is None:
        return page
    return PreparedPage(
        image=page.image.transpose(method), dpi=page.dpi, notes={**page.notes, "rotated_degrees": clockwise % 360}
    )


def save_pnm(image: Image.Image, path: str) -> None:
    """Uncompressed PBM/PGM: the fastest format to write, and tesseract reads it."""
    image.save(path, format="PPM")
