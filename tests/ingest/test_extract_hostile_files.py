"""Hostile PDFs and images (built here, small on disk) are refused or bounded before they take memory."""

from __future__ import annotations

import io
import resource
import shutil
from pathlib import Path

import pytest
from PIL import Image

from ingest.blobs import FileBlobStore
from ingest.errors import LimitExceeded
from ingest.extract import Extraction, ExtractLimits, extract
from ingest.extract.pdf_child import pdf_child
from ingest.extract.pdf_guard import check_streams, render_dpi
from ingest.extract.pdf_reader import RenderedPage
from tests.ingest.hostile_files import big_pages, flate_bomb, hex_flate_bomb, text_page

MIB = 1 << 20
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def read(data: bytes, blobs: FileBlobStore, **limits: object) -> Extraction:
    return extract(data, filename="hostile.pdf", content_type=None, blobs=blobs,
                   limits=ExtractLimits.model_validate(limits))


def peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def test_a_2_mib_pdf_that_inflates_to_2_gib_is_refused_before_pdfium_reads_it(blobs: FileBlobStore) -> None:
    bomb = flate_bomb(2 << 30)
    assert len(bomb) < 3 * MIB
    before = peak_rss_mb()
    with pytest.raises(LimitExceeded, match=r"inflates to more than 256 MiB .*max_pdf_stream_mb"):
        read(bomb, blobs)
    assert peak_rss_mb() - before < 200, "the stream check inflates into a small window, never the whole stream"


def test_the_stream_cap_is_a_setting_and_ordinary_streams_pass(blobs: FileBlobStore) -> None:
    with pytest.raises(LimitExceeded, match="max_pdf_stream_mb"):
        read(flate_bomb(64 * MIB), blobs, max_pdf_stream_mb=16)
    check_streams(flate_bomb(8 * MIB), max_stream_bytes=16 * MIB)  # under the cap: no complaint
    assert "Hello" in read(text_page(), blobs, max_pdf_stream_mb=1).parts[0].text


def test_a_bomb_the_stream_check_cannot_see_dies_in_the_pdf_reader_not_here(blobs: FileBlobStore) -> None:
    """Behind an ASCIIHex filter the stream is not measured in-process; PDFium inflates it in the child,
    which hits its address-space limit. This process stays small and the next PDF reads as usual."""
    bomb = hex_flate_bomb(1 << 30)
    before = peak_rss_mb()
    with pytest.raises(LimitExceeded, match="pdf_memory_mb"):
        read(bomb, blobs, pdf_memory_mb=300, ocr_enabled=False)
    assert peak_rss_mb() - before < 200
    assert "Hello" in read(text_page(), blobs, pdf_memory_mb=300).parts[0].text


def test_render_dpi_is_bounded_by_pixels() -> None:
    a4 = (595.0, 842.0)
    assert render_dpi(*a4, dpi=300, max_pixels=20_000_000) == 300
    assert render_dpi(40 * 72, 40 * 72, dpi=300, max_pixels=20_000_000) == 111  # 4,440 px a side
    assert render_dpi(200 * 72, 200 * 72, dpi=300, max_pixels=20_000_000) is None
    assert render_dpi(0, 842, dpi=300, max_pixels=20_000_000) is None
    assert render_dpi(float("inf"), 842, dpi=300, max_pixels=20_000_000) is None


@needs_tesseract
def test_pages_of_200_inches_are_not_rendered_and_say_why(blobs: FileBlobStore) -> None:
    before = peak_rss_mb()
    result = read(big_pages(200, pages=3), blobs)
    assert peak_rss_mb() - before < 200
    part = result.parts[0]
    assert part.error is not None and "max_render_pixels" in part.error and "200 x 200 in" in part.error
    assert sum("max_render_pixels" in w for w in result.warnings) == 3


@needs_tesseract
def test_a_large_page_is_rendered_at_a_lower_dpi_within_the_pixel_bound(blobs: FileBlobStore) -> None:
    result = read(big_pages(40), blobs)
    assert any("rendered for OCR at 125 dpi" in w for w in result.warnings)  # 5,000 px a side


def test_user_unit_does_not_enlarge_the_rendered_page(tmp_path: Path) -> None:
    """A 10-inch page with /UserUnit 20 is 200 inches on paper; PDFium renders it by its units, so the
    pixel bound holds: 3,000 px a side at 300 dpi."""
    path = tmp_path / "user-unit.pdf"
    path.write_bytes(big_pages(10, user_unit=20))
    page: RenderedPage = pdf_child(768).call("render_page", path=str(path), password=None, number=0, dpi=300,
                                             max_pixels=20_000_000)
    assert (page.width, page.height, page.refused) == (3000, 3000, None)
    assert len(page.pixels) == 3000 * 3000


# --- images -------------------------------------------------------------------------------------


def _png(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_colour_image_over_max_image_mb_is_not_decoded(blobs: FileBlobStore) -> None:
    """12,000 x 12,000 RGB (a 440 KB PNG) took casework ingest to 1.9 GB; now it is refused undecoded."""
    data = _png("RGB", (1200, 1200))  # 4.1 MiB decoded; the same rule at a tenth of the size
    before = peak_rss_mb()
    part = extract(data, filename="big.png", content_type=None, blobs=blobs,
                   limits=ExtractLimits(max_image_mb=4)).parts[0]
    assert part.error is not None and "max_image_mb" in part.error and "1200x1200" in part.error
    assert peak_rss_mb() - before < 50


@needs_tesseract
def test_an_image_over_max_render_pixels_is_scaled_down_before_ocr(blobs: FileBlobStore) -> None:
    part = extract(_png("L", (1000, 1000)), filename="wide.png", content_type=None, blobs=blobs,
                   limits=ExtractLimits(max_render_pixels=100_000)).parts[0]
    assert part.fields["reduced_by"] == 4  # 250 x 250 px given to tesseract
