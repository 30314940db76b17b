"""Scanned pages: skew measured in numpy, small skew left to tesseract, large skew turned level, and the
pages of one document read by every OCR process at once, in order (issue 15.10)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest.blobs import FileBlobStore
from ingest.extract import ExtractLimits, extract
from ingest.extract.ocr import OcrSettings
from ingest.extract.scan_ocr import read_page, read_pages
from ingest.extract.scan_prep import ImageUnreadable, estimate_skew
from ingest.extract.skew import measure_skew
from tests.ingest.test_extract_parallel import Watch

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")

LINES = [
    "Dear Sir, I write about my account 22142500",
    "and the meter reading taken on the third of May.",
    "The balance on the statement is not what I paid",
    "by direct debit, and I ask for a refund of the",
    "amount taken twice. Please confirm by letter.",
    "Yours faithfully, Alan Jones, 12 Mill Lane",
]
KNOWN = ["account", "22142500", "meter", "statement", "refund", "faithfully", "Jones"]


def letter(angle: float = 0.0, *, number: int = 0, sideways: bool = False) -> Image.Image:
    """A bitonal 300 dpi page of prose, turned ``angle`` degrees counter-clockwise (as a scanner skews)."""
    page = Image.new("L", (1900, 1100), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=46)
    for n, line in enumerate(LINES if not number else [f"Page {number} of the letter", *LINES[1:]]):
        draw.text((120, 120 + n * 140), line, fill=0, font=font)
    if sideways:
        page = page.transpose(Image.Transpose.ROTATE_90)
    page = page.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255, expand=True)
    page = page.point(lambda v: 255 if v > 150 else 0).convert("1")
    page.info["dpi"] = (300, 300)
    return page


@pytest.mark.parametrize("angle", [-3.0, -1.6, 0.7, 2.3, 4.0])
def test_skew_is_measured_to_a_quarter_degree(angle: float) -> None:
    assert measure_skew(letter(angle)) == pytest.approx(-angle, abs=0.26)


@pytest.mark.parametrize("angle", [-2.0, 1.5])
def test_skew_of_a_page_on_its_side_is_measured(angle: float) -> None:
    assert measure_skew(letter(angle, sideways=True)) == pytest.approx(-angle, abs=0.26)


def test_a_level_page_and_a_blank_page_have_no_skew() -> None:
    assert measure_skew(letter(0.0)) == 0.0
    assert measure_skew(Image.new("1", (1200, 1700), 1)) == 0.0
    assert measure_skew(Image.new("L", (1200, 1700), 0)) == 0.0  # all ink: nothing to level


def test_skew_under_a_degree_is_left_to_tesseract() -> None:
    assert estimate_skew(letter(0.8)) == 0.0
    assert estimate_skew(letter(-2.5)) == pytest.approx(2.5, abs=0.26)


@needs_tesseract
def test_a_page_skewed_under_the_threshold_is_not_turned_yet_reads_correctly() -> None:
    reading = read_page(1, letter(0.9), OcrSettings())
    assert reading.error is None
    assert "deskewed_degrees" not in reading.notes
    assert [w for w in KNOWN if w not in reading.ocr.text] == []
    assert reading.ocr.mean_confidence > 80


@needs_tesseract
def test_a_page_skewed_over_the_threshold_is_turned_level_and_reads_correctly() -> None:
    reading = read_page(1, letter(-2.6), OcrSettings())
    assert reading.error is None
    assert reading.notes["deskewed_degrees"] == pytest.approx(2.6, abs=0.26)
    assert [w for w in KNOWN if w not in reading.ocr.text] == []
    assert reading.ocr.mean_confidence > 80


def multipage_tiff(pages: int) -> bytes:
    out = io.BytesIO()
    first, *rest = [letter(0.0, number=n) for n in range(1, pages + 1)]
    first.save(out, format="TIFF", compression="group4", save_all=True, append_images=rest, dpi=(300, 300))
    return out.getvalue()


def image_only_pdf(pages: int) -> bytes:
    out = io.BytesIO()
    first, *rest = [letter(0.0, number=n) for n in range(1, pages + 1)]
    first.save(out, format="PDF", save_all=True, append_images=rest, resolution=300)
    return out.getvalue()


@needs_tesseract
@pytest.mark.parametrize(("form", "processes"), [("tiff", 1), ("tiff", 2), ("pdf", 2)])
def test_the_pages_of_one_document_are_read_by_every_ocr_process_in_page_order(
    tmp_path: Path, form: str, processes: int
) -> None:
    data = multipage_tiff(5) if form == "tiff" else image_only_pdf(5)
    with Watch() as watch:
        result = extract(data, filename=f"letter.{form}", content_type=None, blobs=FileBlobStore(tmp_path),
                         limits=ExtractLimits(ocr_processes=processes))
    pages = result.parts[0].text.split("\f")
    assert [p.splitlines()[0].strip() for p in pages] == [f"Page {n} of the letter" for n in range(1, 6)]
    assert watch.most == processes  # one document keeps every OCR process busy, never more


@needs_tesseract
def test_pages_read_before_a_page_that_cannot_be_decoded_are_handed_out_before_the_error() -> None:
    def pages() -> Iterator[tuple[int, Image.Image]]:
        yield 1, letter(0.0, number=1)
        yield 2, letter(0.0, number=2)
        raise ImageUnreadable("image page cannot be decoded (broken strip)")

    got = []
    with pytest.raises(ImageUnreadable, match="broken strip"):
        for reading in read_pages(pages(), OcrSettings(processes=2)):
            got.append(reading)
    assert [r.number for r in got] == [1, 2]
    assert all("of the letter" in r.ocr.text for r in got)
