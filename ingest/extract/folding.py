"""Reading a contained file (attachment, archive member) into one Part of its container."""

from __future__ import annotations

import logging
from typing import Any

from ingest.errors import BadInput
from ingest.extract.context import ExtractContext
from ingest.messages import Part, PartKind

log = logging.getLogger(__name__)

_STRUCTURED = ("invoice", "statement", "ccda")


def fold(
    index: int, kind: PartKind, data: bytes, *, filename: str | None, content_type: str | None,
    ctx: ExtractContext, fields: dict[str, Any] | None = None,
) -> Part:
    """Store ``data``, extract it one level deeper, and fold the result into one Part.

    Texts of the inner parts are joined (form feed between pages/records); failures become
    Part.error (and warnings), never exceptions, so one bad attachment does not sink its container.
    """
    fields = dict(fields or {})
    if not data:
        return ctx.part(index, kind, filename=filename, content_type=content_type, fields=fields,
                        error="empty (0 bytes): nothing to read")
    sha = ctx.blobs.put(data).sha256
    label = filename or content_type or kind
    if len(data) > ctx.limits.max_bytes:
        return ctx.part(index, kind, filename=filename, content_type=content_type, blob_sha256=sha,
                        fields=fields,
                        error=f"too large to read ({len(data):,} bytes > max_bytes {ctx.limits.max_bytes:,})")
    if ctx.depth + 1 > ctx.limits.max_depth:
        return ctx.part(index, kind, filename=filename, content_type=content_type, blob_sha256=sha,
                        fields=fields,
                        error=f"nested more than {ctx.limits.max_depth} levels deep (max_depth); stored unread")
    inner_ctx = ctx.nested()
    try:
        inner = ctx.recurse(data, filename, content_type, inner_ctx)
    except BadInput as exc:
        ctx.warnings.extend(f"{label}: {w}" for w in inner_ctx.warnings)
        return ctx.part(index, kind, filename=filename, content_type=content_type, blob_sha256=sha,
                        fields=fields, error=str(exc))
    ctx.warnings.extend(f"{label}: {w}" for w in inner.warnings)
    texts = [p.text for p in inner.parts if p.text.strip()]
    errors = [p.error for p in inner.parts if p.error]
    if len(inner.parts) == 1 or inner.parts[0].kind == "page_set":  # a PDF's own fields, even with embedded files
        fields = {**inner.parts[0].fields, **fields}
        content_type = content_type or inner.parts[0].content_type
    if len(inner.parts) > 1:
        fields["parts"] = len(inner.parts)
        for key in _STRUCTURED:  # an invoice found in an embedded file describes the folded one too
            found = next((p.fields[key] for p in inner.parts if key in p.fields), None)
            if found is not None:
                fields.setdefault(key, found)
        for p in inner.parts:
            if p.error and p.text.strip() == "":
                ctx.warn(f"{label}: inner part {p.index} ({p.filename or p.kind}): {p.error}")
    if inner.email is not None:
        fields["email"] = inner.email.model_dump(mode="json")
    sep = "\n\f\n" if len(texts) > 1 else ""
    return ctx.part(
        index, kind, text=sep.join(texts), filename=filename, content_type=content_type, blob_sha256=sha,
        fields=fields, error=None if texts else ("; ".join(dict.fromkeys(e for e in errors if e)) or None),
    )
