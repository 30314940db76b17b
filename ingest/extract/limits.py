"""How much the extractor will read from one item before it stops (configurable, with safe defaults)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

MIB = 1024 * 1024


class ArchiveLimits(BaseModel):
    """Zip-bomb guards, applied to every archive in an item, nested ones included."""

    model_config = ConfigDict(frozen=True)

    total_uncompressed: int = Field(200 * MIB, gt=0, description="bytes unpacked from all archives of an item")
    max_ratio: float = Field(100, gt=0, description="largest uncompressed/compressed size of one member")
    max_members: int = Field(1000, gt=0, description="entries in one archive")


class ExtractLimits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(50 * MIB, gt=0, description="size of the item (and of each attachment)")
    max_parts: int = Field(500, gt=0, description="parts produced from one item or container")
    max_depth: int = Field(8, gt=0, description="nesting of containers: attachments, archives, MIME levels")
    max_pdf_pages: int = Field(500, gt=0)
    max_text_chars: int = Field(2_000_000, gt=0, description="text kept per part; the rest is cut with a warning")
    archive: ArchiveLimits = Field(default_factory=ArchiveLimits)
    pdf_passwords: list[SecretStr] = Field(default_factory=list, description="tried after the empty password")
    ocr_enabled: bool = True
    ocr_language: str = "eng"
    ocr_dpi: int = Field(300, gt=0)
    ocr_timeout_seconds: float = Field(120, gt=0, description="per tesseract run (one page or image)")
    ocr_memory_mb: int = Field(1024, gt=0, description="address-space limit of a tesseract process")
    max_ocr_pages: int = Field(50, ge=0, description="pages of one PDF sent to OCR; the rest get a warning")
    min_ocr_pixels: int = Field(
        40_000, ge=0, description="smaller images (logos, spacers, icons) are not sent to OCR"
    )
