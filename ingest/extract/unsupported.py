"""Files we cannot read (yet): stored, with an error that says what they are."""

from __future__ import annotations

from ingest.extract.context import ExtractContext
from ingest.extract.result import Extraction

_NAMES = {
    b"\xd0\xcf\x11\xe0": "OLE2 compound file (Outlook .msg, or legacy Word/Excel .doc/.xls)",
    b"\x78\x9f\x3e\x22": "TNEF (winmail.dat from Outlook)",
    b"Rar!": "RAR archive",
    b"7z\xbc\xaf": "7-Zip archive",
    b"\x1f\x8b": "gzip",
    b"{\\rtf": "RTF document",
}


def describe(data: bytes, filename: str | None, content_type: str | None) -> str:
    for magic, name in _NAMES.items():
        if data.startswith(magic):
            return name
    return content_type or (f"file {filename!r}" if filename else "binary data")


def extract_unsupported(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    sha = blob or ctx.blobs.put(data).sha256
    part = ctx.part(
        0, "file", filename=filename, content_type=content_type, blob_sha256=sha,
        error=f"unsupported type {describe(data, filename, content_type)}; stored unread",
    )
    return Extraction(parts=[part], warnings=ctx.warnings)
