"""Reading inbound items: split containers (email, zip, CSV rows), get text, keep structured fields.

``extract`` is the one entry point. Whole-item failures raise ``BadInput`` / ``LimitExceeded`` with
a message a person can act on; problems with one part set ``Part.error`` and extraction carries on,
so every part has text or says why it has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.extract.limits import ArchiveLimits, ExtractLimits
from ingest.extract.result import Extraction

if TYPE_CHECKING:
    from ingest.blobs import BlobStore

__all__ = ["ArchiveLimits", "ExtractLimits", "Extraction", "extract"]


def extract(
    data: bytes,
    *,
    filename: str | None,
    content_type: str | None,
    blobs: BlobStore,
    limits: ExtractLimits,
) -> Extraction:
    """Read ``data`` (a whole inbound item) into parts with text, email headers and warnings."""
    # The readers (PDF, images, OCR, mail, archives) are imported on the first call, not with the
    # package: settings and `casework ingest` import ``ingest.extract.limits`` and need none of them.
    from ingest.extract.context import ExtractContext
    from ingest.extract.dispatch import extract_any

    ctx = ExtractContext(blobs=blobs, limits=limits, recurse=extract_any)
    return extract_any(data, filename, content_type, ctx)
