"""Getting a scanned page ready for OCR with Pillow: square pixels, a credible DPI, skew removed.

Fax pages come at 204x98 dpi (each pixel twice as tall as wide) and are stretched vertically;
pages over 400 dpi are scaled down to 300 (OCR is no better and four times slower at 600);
a DPI tag that cannot be true (72 dpi on a 4000-pixel page) is dropped, so tesseract
estimates the resolution from the text height. Skew is found by projection profiles on a
small copy of the page and corrected on the full page.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageSequence

log = logging.getLogger(__name__)

_MIN_DPI, _MAX_DPI, _TARGET_DPI = 100, 400, 300
_MAX_PAGE_INCHES = 20  # a page longer than this at the tagged DPI means the tag is wrong
_SKEW_RANGE = 5.0  # degrees searched either way
_MIN_SKEW = 0.4  # smaller angles are left alone (tesseract's line finding copes with them)
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
    out in greyscale (or bitonal), so only one full-colour page is in memory at a time.

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
                yield page
        finally:
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


def _sharpness(values: list[float]) -> float:
    return sum((a - b) ** 2 for a, b in itertools.pairwise(values))


def _profile_score(probe: Image.Image, angle: float) -> float:
    turned = probe.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=0)
    rows = [float(v) for v in turned.resize((1, turned.height), Image.Resampling.BOX).tobytes()]
    cols = [float(v) for v in turned.resize((turned.width, 1), Image.Resampling.BOX).tobytes()]
    return max(_sharpness(rows), _sharpness(cols))


def estimate_skew(image: Image.Image) -> float:
    """Angle (degrees, counter-clockwise) that makes text lines level; 0.0 when none is clearly better."""
    scale = _PROBE_SIZE / max(image.size)
    probe = image if image.mode == "L" else image.convert("L")
    if scale < 1:
        factor = max(1, int(1 / scale))
        probe = probe.reduce(factor) if factor > 1 else probe
    probe = ImageOps.invert(probe)  # ink bright, paper dark: rotation fills with paper
    level = _profile_score(probe, 0.0)
    if level <= 0:
        return 0.0
    coarse = [float(a) for a in range(-int(_SKEW_RANGE), int(_SKEW_RANGE) + 1)]
    best = max(coarse, key=lambda a: _profile_score(probe, a))
    fine = [best + d / 4 for d in range(-3, 4)]
    scores = {a: _profile_score(probe, a) for a in fine}
    angle = max(scores, key=lambda a: scores[a])
    if scores[angle] < level * 1.05 or abs(angle) < _MIN_SKEW:
        return 0.0
    return round(angle, 2)


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
