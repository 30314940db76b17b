"""Plain text files: charset detection (BOM, UTF-8, declared, cp1252) and line-ending clean-up."""

from __future__ import annotations

import logging

from ingest.extract.charsets import decode_text
from ingest.extract.context import ExtractContext
from ingest.extract.result import Extraction

log = logging.getLogger(__name__)


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def extract_text(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    declared = None
    if content_type and "charset=" in content_type.lower():
        declared = content_type.lower().split("charset=", 1)[1].split(";")[0].strip()
    text, codec = decode_text(data, declared)
    text = normalise_newlines(text).replace("\x00", "")
    log.debug("text %s decoded as %s", filename, codec)
    part = ctx.part(
        0, "file", text=text, filename=filename, content_type=content_type or "text/plain",
        blob_sha256=blob, fields={"charset": codec},
    )
    return Extraction(parts=[part], warnings=ctx.warnings)
