"""Zip archives: every member read as its own part, within the zip-bomb limits."""

from __future__ import annotations

import io
import logging
import zipfile

from ingest.errors import BadInput, LimitExceeded
from ingest.extract.context import ExtractContext
from ingest.extract.folding import fold
from ingest.extract.result import Extraction
from ingest.messages import Part

log = logging.getLogger(__name__)


def _check(infos: list[zipfile.ZipInfo], ctx: ExtractContext, name: str) -> None:
    limits = ctx.limits.archive
    if len(infos) > limits.max_members:
        raise LimitExceeded(
            f"archive {name} has {len(infos):,} entries, over the limit of {limits.max_members:,} "
            "(archive.max_members); it is refused as a possible zip bomb"
        )
    declared = sum(i.file_size for i in infos)
    if ctx.budget.archive_bytes + declared > limits.total_uncompressed:
        raise LimitExceeded(
            f"archive {name} would unpack to {declared:,} bytes, over the limit of "
            f"{limits.total_uncompressed:,} (archive.total_uncompressed); refused as a possible zip bomb"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1024 * 1024 and ratio > limits.max_ratio:
            raise LimitExceeded(
                f"archive member {info.filename!r} is compressed {ratio:,.0f} to 1, over the limit of "
                f"{limits.max_ratio:g} (archive.max_ratio); the archive is refused as a zip bomb"
            )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, ctx: ExtractContext) -> bytes:
    """Read at most the declared size (+1 byte to catch a lying header) and charge the budget."""
    allowed = min(info.file_size, ctx.limits.max_bytes)
    with archive.open(info) as member:
        data = member.read(allowed + 1)
    if len(data) > allowed:
        raise LimitExceeded(
            f"archive member {info.filename!r} unpacks to more than its declared or allowed size "
            f"({allowed:,} bytes); the archive is refused as a zip bomb"
        )
    ctx.budget.archive_bytes += len(data)
    if ctx.budget.archive_bytes > ctx.limits.archive.total_uncompressed:
        raise LimitExceeded(
            f"archives in this item unpack to more than {ctx.limits.archive.total_uncompressed:,} bytes "
            "(archive.total_uncompressed); refused as a possible zip bomb"
        )
    return data


def extract_zip(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    name = filename or "(zip)"
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise BadInput(f"zip archive {name} is damaged ({exc}); ask the sender to create it again") from None
    names = {i.filename for i in infos}
    if "[Content_Types].xml" in names or "mimetype" in names:
        part = ctx.part(
            0, "file", filename=filename, content_type=content_type, blob_sha256=blob,
            error="unsupported type: office document (OOXML/ODF); stored unread",
        )
        return Extraction(parts=[part], warnings=ctx.warnings)
    _check(infos, ctx, name)
    parts: list[Part] = []
    with archive:
        for info in infos:
            if len(parts) >= ctx.limits.max_parts:
                ctx.warn(
                    f"archive {name}: only the first {ctx.limits.max_parts} members were read (max_parts); "
                    f"{len(infos) - len(parts)} were not"
                )
                break
            index = len(parts)
            if info.flag_bits & 0x1:
                parts.append(ctx.part(index, "file", filename=info.filename,
                                      error="archive member is encrypted; no password is configured"))
                continue
            try:
                member = _read_member(archive, info, ctx)
            except (zipfile.BadZipFile, EOFError, NotImplementedError, OSError) as exc:
                parts.append(ctx.part(index, "file", filename=info.filename,
                                      error=f"archive member could not be unpacked: {exc}"))
                continue
            parts.append(fold(index, "file", member, filename=info.filename, content_type=None, ctx=ctx))
    if not parts:
        parts.append(ctx.part(0, "file", filename=filename, blob_sha256=blob, error="archive is empty"))
    return Extraction(parts=parts, warnings=ctx.warnings)
