"""State shared while one item is extracted: limits, blob store, nesting depth, budgets, warnings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingest.blobs import BlobStore
from ingest.extract.limits import ExtractLimits
from ingest.extract.ocr import OcrSettings
from ingest.extract.result import Extraction
from ingest.messages import Part, PartKind


@dataclass
class Budget:
    """Counters shared by every nesting level of one item (archive bytes unpacked so far)."""

    archive_bytes: int = 0


Recurse = Callable[[bytes, str | None, str | None, "ExtractContext"], Extraction]


@dataclass
class ExtractContext:
    blobs: BlobStore
    limits: ExtractLimits
    recurse: Recurse
    depth: int = 0
    budget: Budget = field(default_factory=Budget)
    warnings: list[str] = field(default_factory=list)

    def nested(self) -> ExtractContext:
        """A context for a contained item (attachment, archive member): one level deeper, own warnings."""
        return ExtractContext(
            blobs=self.blobs,
            limits=self.limits,
            recurse=self.recurse,
            depth=self.depth + 1,
            budget=self.budget,
        )

    def ocr_settings(self) -> OcrSettings:
        return OcrSettings(
            language=self.limits.ocr_language,
            timeout_seconds=self.limits.ocr_timeout_seconds,
            memory_mb=self.limits.ocr_memory_mb,
            max_pixels=self.limits.max_render_pixels,
            processes=self.limits.ocr_workers(),
        )

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def part(
        self,
        index: int,
        kind: PartKind,
        *,
        text: str = "",
        error: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        blob_sha256: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> Part:
        """Build a Part, cutting its text at ``max_text_chars`` (with a warning)."""
        limit = self.limits.max_text_chars
        if len(text) > limit:
            self.warn(
                f"part {index} ({filename or kind}): text cut at {limit:,} of {len(text):,} characters "
                "(max_text_chars)"
            )
            text = text[:limit]
        if not text.strip() and error is None:
            error = "no text found in this part"
        return Part(
            index=index,
            kind=kind,
            filename=filename,
            content_type=content_type,
            blob_sha256=blob_sha256,
            text=text,
            error=error,
            fields=fields or {},
        )
