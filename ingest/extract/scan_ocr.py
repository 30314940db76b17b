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
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ingest.extract.ocr import OcrError, OcrSettings, detect_rotation, ocr_words
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


def read_pages(pages: Iterable[tuple[int, Image.Image]], settings: OcrSettings) -> Iterator[PageReading]:
    """OCR a document's pages as they come, ``settings.processes`` at once; readings in page order.

    ``pages`` decodes or renders each page when reached; that runs here while tesseract reads the
    pages before it, and at most ``2 x processes`` pages are decoded and not yet read (memory). A page
    is started as soon as a tesseract slot is free, so no batch of pages waits for its slowest one
    and every core stays busy to the last page of the document. If ``pages`` itself fails (a page
    that cannot be decoded), the pages started before it are still read and handed out, then the
    error is raised.
    """
    source = iter(pages)
    workers = max(1, settings.processes)
    if workers == 1:
        for number, image in source:
            yield read_page(number, image, settings)
        return
    failed: Exception | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr") as pool:
        started: deque[Future[PageReading]] = deque()

        def ready() -> Iterator[PageReading]:
            while started and started[0].done():
                yield started.popleft().result()

        try:
            for number, image in source:
                started.append(pool.submit(read_page, number, image, settings))
                yield from ready()
                # a slow page holds back the handing out, not the reading: up to 2 x processes unread
                while len(unread := [f for f in started if not f.done()]) >= 2 * workers:
                    wait(unread, return_when=FIRST_COMPLETED)
                    yield from ready()
        except Exception as exc:  # raised below, once the pages already started are read
            failed = exc
        while started:
            yield started.popleft().result()
    if failed is not None:
        raise failed
