"""When a scan was made, as the scanner recorded it: TIFF/Exif DateTime for images, the Info
dictionary's CreationDate for PDFs.  Kept beside the time casework received the file.

Partial by design: a PDF whose Info dictionary sits in a compressed object stream is not read here
(the parent process never opens PDFs with PDFium; that happens in the guarded child), and a date
without a time zone is taken as UTC.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta, timezone

from PIL import Image, UnidentifiedImageError

_EXIF_DATETIME, _EXIF_IFD, _EXIF_ORIGINAL = 306, 0x8769, 36867
_PDF_DATE = re.compile(
    rb"/CreationDate\s*\(D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?([Zz+-])?(\d{2})?'?(\d{2})?")
_PDF_WINDOW = 256 * 1024  # the Info dictionary is near the start or the end of the file


def _valid(moment: datetime) -> datetime | None:
    return moment if 1980 <= moment.year <= 2100 else None


def image_capture_time(data: bytes) -> datetime | None:
    """DateTimeOriginal (Exif), else DateTime (TIFF tag 306), of an image file; None if absent."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            value = exif.get_ifd(_EXIF_IFD).get(_EXIF_ORIGINAL) or exif.get(_EXIF_DATETIME)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if not isinstance(value, str):
        return None
    try:
        return _valid(datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC))
    except ValueError:
        return None


def pdf_capture_time(data: bytes) -> datetime | None:
    """CreationDate of a PDF's (uncompressed) Info dictionary; None if absent or unreadable."""
    for window in (data[-_PDF_WINDOW:], data[:_PDF_WINDOW]):
        match = _PDF_DATE.search(window)
        if match is None:
            continue
        year, month, day, hour, minute, second, sign, tzh, tzm = match.groups()
        try:
            zone = UTC
            if sign in (b"+", b"-") and tzh:
                offset = timedelta(hours=int(tzh), minutes=int(tzm or 0))
                zone = timezone(offset if sign == b"+" else -offset)
            return _valid(datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                                   int(second or 0), tzinfo=zone))
        except ValueError:
            return None
    return None
