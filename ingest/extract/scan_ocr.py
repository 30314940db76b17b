"""OCR of scanned pages: prepare each page, read it, and turn it upright when it reads badly.

tesseract's layout analysis copes with pages turned 90 or 270 degrees but not with upside-down
ones, and orientation detection (``--psm 0``) costs about half an OCR run. So a page is OCRed
as it is first; only when its words are mostly doubtful is its orientation detected, and the
page read again turned upright, keeping whichever reading tesseract is surer of. Good pages
cost one tesseract run, which is what keeps casework near raw tesseract speed.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ingest.extract.ocr import OcrError, OcrSettings, detect_rotation, map_concurrently, ocr_words
from ingest.extract.ocr_words import EMPTY, OcrText
from ingest.extract.scan_prep import PreparedPage, deskew, normalise, save_pnm, turn

log = logging.getLogger(__name__)

RETRY_BELOW_CONFIDENCE = 60.0  # mean word confidence under which orientation is checked
_MIN_OSD_CONFIDENCE = 1.0


@dataclass(frozen=True)
class PageReading:
    """The OCR of one page, or why there is none."""

    number: int  # 1-based
    ocr: OcrText = EMPTY
    error: str | None = None
    notes: dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"page": self.number, **self.ocr.fields(), **self.notes}
        if self.error:
            out["error"] = self.error
        return out


def _read(page: PreparedPage, directory: Path, settings: OcrSettings) -> OcrText:
    path = directory / "page.pnm"
    save_pnm(page.image, str(path))
    try:
        return ocr_words(path, settings, dpi=page.dpi)
    finally:
        path.unlink(missing_ok=True)


def _upright(
    page: PreparedPage, first: OcrText, directory: Path, settings: OcrSettings
) -> tuple[OcrText, PreparedPage]:
    path = directory / "osd.pnm"
    save_pnm(page.image, str(path))
    try:
        found = detect_rotation(path, settings, dpi=page.dpi)
    finally:
        path.unlink(missing_ok=True)
    if found is None or found[0] == 0 or found[1] < _MIN_OSD_CONFIDENCE:
        return first, page
    turned = turn(page, found[0])
    second = _read(turned, directory, settings)
    if second.mean_confidence > first.mean_confidence:
        return second, turned
    return first, page


def read_page(number: int, image: Image.Image, settings: OcrSettings, *, correct: bool = True) -> PageReading:
    """OCR one page image: normalised, deskewed, and turned upright if it reads badly."""
    try:
        page = normalise(image, max_pixels=settings.max_pixels)
        if correct:
            page = deskew(page)
        with tempfile.TemporaryDirectory(prefix="casework-ocr-") as tmp:
            directory = Path(tmp)
            ocr = _read(page, directory, settings)
            if correct and ocr.words >= 3 and ocr.mean_confidence < RETRY_BELOW_CONFIDENCE:
                ocr, page = _upright(page, ocr, directory, settings)
    except OcrError as exc:
        return PageReading(number=number, error=str(exc))
    except (OSError, ValueError) as exc:
        return PageReading(number=number, error=f"page image could not be prepared for OCR ({exc})")
    finally:
        image.close()
    notes = dict(page.notes)
    if page.dpi:
        notes["dpi"] = page.dpi
    return PageReading(number=number, ocr=ocr, notes=notes)


def read_pages(pages: list[tuple[int, Image.Image]], settings: OcrSettings) -> list[PageReading]:
    """OCR several pages concurrently (``settings.processes`` tesseract processes); results in page order."""
    return map_concurrently(lambda job: read_page(job[0], job[1], settings), pages, workers=settings.processes)
