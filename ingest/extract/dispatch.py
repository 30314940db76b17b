"""Choosing the reader for some bytes and running it, at any nesting level."""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from collections.abc import Callable

from ingest.errors import BadInput, LimitExceeded
from ingest.extract.archive import extract_zip
from ingest.extract.context import ExtractContext
from ingest.extract.csv import extract_csv
from ingest.extract.email import extract_email
from ingest.extract.html import extract_html
from ingest.extract.image import extract_image
from ingest.extract.outlook_msg import extract_outlook_msg, is_outlook_msg
from ingest.extract.pdf import extract_pdf
from ingest.extract.result import Extraction
from ingest.extract.sniff import Kind, sniff
from ingest.extract.text import extract_text
from ingest.extract.tnef import extract_tnef
from ingest.extract.unsupported import extract_unsupported
from ingest.extract.xml import extract_xml

log = logging.getLogger(__name__)

Reader = Callable[..., Extraction]

READERS: dict[Kind, Reader] = {
    "email": extract_email,
    "pdf": extract_pdf,
    "image": extract_image,
    "zip": extract_zip,
    "xml": extract_xml,
    "html": extract_html,
    "csv": extract_csv,
    "text": extract_text,
    "ole": extract_unsupported,
    "tnef": extract_tnef,
    "unknown": extract_unsupported,
}
# the whole item is stored by whoever received it; these readers also reference it from their part
_SINGLE_DOCUMENT: set[Kind] = {"pdf", "image", "xml", "html", "text", "ole", "tnef", "unknown"}


def _gunzip(data: bytes, ctx: ExtractContext) -> bytes:
    limit = min(ctx.limits.max_bytes, ctx.limits.archive.total_uncompressed - ctx.budget.archive_bytes)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadInput(f"gzip file is damaged ({exc}); ask the sender to create it again") from None
    if len(out) > limit:
        raise LimitExceeded(f"gzip file unpacks to more than {limit:,} bytes; refused as a possible bomb")
    ratio = len(out) / max(len(data), 1)
    if len(out) > 1024 * 1024 and ratio > ctx.limits.archive.max_ratio:
        raise LimitExceeded(
            f"gzip file is compressed {ratio:,.0f} to 1, over archive.max_ratio "
            f"{ctx.limits.archive.max_ratio:g}; refused as a possible bomb"
        )
    ctx.budget.archive_bytes += len(out)
    return out


def extract_any(data: bytes, filename: str | None, content_type: str | None, ctx: ExtractContext) -> Extraction:
    if not data:
        raise BadInput("empty file (0 bytes): nothing to read; ask the sender to resend")
    if len(data) > ctx.limits.max_bytes:
        raise LimitExceeded(
            f"file is {len(data):,} bytes, over the limit of {ctx.limits.max_bytes:,} (max_bytes)"
        )
    if ctx.depth > ctx.limits.max_depth:
        raise LimitExceeded(f"nested more than {ctx.limits.max_depth} levels deep (max_depth)")
    kind = sniff(data, filename, content_type)
    log.debug("extract %s (%s, %d bytes) as %s at depth %d", filename, content_type, len(data), kind, ctx.depth)
    if kind == "gzip":
        inner_name = filename[:-3] if filename and filename.lower().endswith(".gz") else None
        return extract_any(_gunzip(data, ctx), inner_name, None, ctx)
    if kind == "ole" and is_outlook_msg(data):
        return extract_outlook_msg(data, filename=filename, content_type=content_type,
                                   blob=ctx.blobs.put(data).sha256 if ctx.depth == 0 else None, ctx=ctx)
    blob = ctx.blobs.put(data).sha256 if kind in _SINGLE_DOCUMENT and ctx.depth == 0 else None
    return READERS[kind](data, filename=filename, content_type=content_type, blob=blob, ctx=ctx)
