"""How much the extractor will read from one item before it stops (configurable, with safe defaults).

Every field is a setting: ``CASEWORK_EXTRACT__<FIELD>`` (for example ``CASEWORK_EXTRACT__OCR_LANGUAGE=eng+deu``,
``CASEWORK_EXTRACT__ARCHIVE__MAX_RATIO=50``, ``CASEWORK_EXTRACT__PDF_PASSWORDS='["secret"]'``).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr

MIB = 1024 * 1024


class ArchiveLimits(BaseModel):
    """Zip-bomb guards, applied to every archive in an item, nested ones included
    (``CASEWORK_EXTRACT__ARCHIVE__<FIELD>``)."""

    model_config = ConfigDict(frozen=True)

    total_uncompressed: int = Field(
        200 * MIB, gt=0, description="bytes unpacked from all archives (zip, gzip) of one item, in total"
    )
    max_ratio: float = Field(
        100, gt=0, description="largest uncompressed/compressed size ratio of one member (members over 1 MiB)"
    )
    max_members: int = Field(1000, gt=0, description="entries in one archive")


class ExtractLimits(BaseModel):
    """Limits and options of text extraction (``CASEWORK_EXTRACT__<FIELD>``)."""

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(50 * MIB, gt=0, description="size in bytes of the item (and of each attachment)")
    max_parts: int = Field(500, gt=0, description="parts produced from one item or container")
    max_depth: int = Field(8, gt=0, description="nesting of containers: attachments, archives, MIME levels")
    max_pdf_pages: int = Field(500, gt=0, description="pages of one PDF; a longer PDF is refused")
    max_text_chars: int = Field(2_000_000, gt=0, description="text kept per part; the rest is cut with a warning")
    archive: ArchiveLimits = Field(default_factory=ArchiveLimits, description="zip-bomb guards")
    pdf_passwords: list[SecretStr] = Field(
        default_factory=list, description="passwords tried, in order, after the empty one on encrypted PDFs"
    )
    ocr_enabled: bool = Field(True, description="OCR images and PDF pages without a usable text layer")
    ocr_language: str = Field(
        "eng", min_length=1, description="tesseract languages, '+'-joined (eng+deu); each needs its traineddata"
    )
    ocr_dpi: int = Field(300, gt=0, description="resolution at which PDF pages are rendered for OCR")
    ocr_timeout_seconds: float = Field(120, gt=0, description="per tesseract run (one page or image)")
    ocr_memory_mb: int = Field(1024, gt=0, description="address-space limit of a tesseract process, in MiB")
    ocr_processes: int = Field(
        0, ge=0, description="tesseract processes one extract process runs at once (pages of one document and "
        "several documents are read in parallel); 0: one per core. Each takes up to ocr_memory_mb",
    )
    max_ocr_pages: int = Field(
        50, ge=0, description="pages of one PDF or multi-page image sent to OCR; the rest get a warning"
    )
    min_ocr_pixels: int = Field(
        40_000, ge=0, description="smaller images (logos, spacers, icons) are not sent to OCR"
    )
    max_pdf_stream_mb: int = Field(
        256, gt=0, description="MiB one compressed (Flate) stream of a PDF may inflate to; a PDF with a larger one is "
        "refused as a decompression bomb before PDFium reads it",
    )
    pdf_memory_mb: int = Field(
        768, gt=0, description="address-space limit, in MiB, of the child process that reads and renders PDFs "
        "(PDFium); a PDF that needs more is refused as a possible bomb",
    )
    max_render_pixels: int = Field(
        25_000_000, gt=0, description="pixels (width x height) of one page given to OCR: a larger PDF page is rendered "
        "at a lower DPI (not under 100) or not at all, a larger image is scaled down first",
    )
    max_image_mb: int = Field(
        256, gt=0, description="MiB one image page takes decoded (width x height x channels); a larger page is "
        "not decoded: decompression-bomb guard for colour images",
    )
    max_image_pixels: int = Field(
        150_000_000, gt=0, description="larger images (width x height) are not decoded: decompression-bomb guard"
    )

    def ocr_workers(self) -> int:
        """``ocr_processes``, or the number of cores when it is 0."""
        return self.ocr_processes or os.cpu_count() or 1
