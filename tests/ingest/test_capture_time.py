"""A scan's capture time as its scanner recorded it (issue 11.8): TIFF/Exif DateTime, PDF CreationDate."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

from fpdf import FPDF
from PIL import Image

from ingest.extract.capture_time import image_capture_time, pdf_capture_time


def test_tiff_datetime_tag() -> None:
    out = io.BytesIO()
    Image.new("1", (16, 16), 1).save(out, format="TIFF", compression="group4", tiffinfo={306: "2024:03:05 14:07:09"})
    assert image_capture_time(out.getvalue()) == datetime(2024, 3, 5, 14, 7, 9, tzinfo=UTC)


def test_jpeg_exif_original_time_wins_over_datetime() -> None:
    image = Image.new("RGB", (16, 16))
    exif = image.getexif()
    exif[306] = "2024:01:01 00:00:00"
    exif.get_ifd(0x8769)[36867] = "2023:12:24 18:30:00"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    assert image_capture_time(out.getvalue()) == datetime(2023, 12, 24, 18, 30, tzinfo=UTC)


def test_image_without_a_date_and_garbage() -> None:
    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, format="PNG")
    assert image_capture_time(out.getvalue()) is None
    assert image_capture_time(b"not an image") is None


def test_pdf_creation_date_with_offset() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_creation_date(datetime(2025, 6, 30, 9, 15, 0, tzinfo=timezone(timedelta(hours=2))))
    data = bytes(pdf.output())
    assert pdf_capture_time(data) == datetime(2025, 6, 30, 7, 15, tzinfo=UTC)


def test_pdf_dates_as_scanners_write_them() -> None:
    assert pdf_capture_time(b"%PDF-1.4\n1 0 obj<</CreationDate(D:20240102)>>endobj") == datetime(2024, 1, 2, tzinfo=UTC)
    assert pdf_capture_time(b"<</CreationDate (D:20240102030405Z)>>") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert pdf_capture_time(b"<</CreationDate(D:20241399)>>") is None  # month 13: unreadable, not a guess
    assert pdf_capture_time(b"%PDF-1.7 no info") is None
