"""Deciding what kind of document some bytes are: magic numbers first, then extension and content type."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from ingest.extract.charsets import bom_codec

Kind = Literal["email", "pdf", "image", "zip", "ole", "tnef", "xml", "html", "csv", "text", "gzip", "unknown"]

_HEADER_LINE = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9_-]{0,76}:[ \t]?")
_KNOWN_HEADERS = {
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"received", b"return-path", b"mime-version",
    b"content-type", b"delivered-to", b"reply-to", b"x-mailer", b"in-reply-to", b"references", b"sender",
    b"dkim-signature", b"authentication-results", b"x-original-to", b"thread-topic", b"user-agent",
}
_EMAIL_MUST = {b"from", b"received", b"message-id", b"return-path", b"subject", b"delivered-to"}
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body|meta|title|div|table|p|br|span|font)[\s>/]", re.I)

_EXTENSIONS: dict[str, Kind] = {
    ".eml": "email", ".mht": "email", ".mhtml": "email", ".msg": "ole", ".mbox": "email",
    ".pdf": "pdf",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".tif": "image", ".tiff": "image", ".gif": "image",
    ".bmp": "image", ".webp": "image", ".pnm": "image", ".pgm": "image", ".ppm": "image",
    ".zip": "zip", ".gz": "gzip",
    ".xml": "xml", ".ccd": "xml", ".cda": "xml", ".xsd": "xml",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".csv": "csv", ".tsv": "csv", ".tab": "csv", ".psv": "csv",
    ".txt": "text", ".text": "text", ".log": "text", ".md": "text", ".json": "text", ".jsonl": "text",
}
_CONTENT_TYPES: dict[str, Kind] = {
    "message/rfc822": "email", "message/global": "email", "message/news": "email",
    "application/pdf": "pdf", "application/x-pdf": "pdf",
    "application/zip": "zip", "application/x-zip-compressed": "zip", "application/gzip": "gzip",
    "application/xml": "xml", "text/xml": "xml",
    "text/html": "html", "application/xhtml+xml": "html",
    "text/csv": "csv", "text/tab-separated-values": "csv",
    "text/plain": "text", "application/json": "text",
    "application/vnd.ms-outlook": "ole",
}


def _magic(data: bytes) -> Kind | None:
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if data.startswith(b"\x78\x9f\x3e\x22"):
        return "tnef"
    if data.startswith((b"II*\x00", b"MM\x00*", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
        return "image"
    if (data.startswith(b"BM") and len(data) > 26) or (data.startswith(b"RIFF") and data[8:12] == b"WEBP"):
        return "image"
    return None


def _text_head(data: bytes) -> bytes:
    """The first few KB as ASCII-compatible bytes (UTF-16 is recoded), without BOM and leading space."""
    head = data[:4096]
    codec = bom_codec(head)
    if codec and codec.startswith(("utf-16", "utf-32")):
        head = head.decode(codec, errors="ignore").encode("utf-8")
    elif codec:
        head = head[3:]
    return head.lstrip()


def looks_like_email(data: bytes) -> bool:
    head = _text_head(data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = head.split(b"\n")
    if lines and lines[0].startswith(b"From "):  # mbox separator line
        lines = lines[1:]
    seen: set[bytes] = set()
    for line in lines[:200]:
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):
            continue
        if not _HEADER_LINE.match(line):
            return False
        seen.add(line.split(b":", 1)[0].strip().lower())
    return len(seen & _KNOWN_HEADERS) >= 2 and bool(seen & _EMAIL_MUST)


def _markup_kind(data: bytes) -> Kind | None:
    head = _text_head(data)
    if head.startswith(b"<?xml"):
        return "html" if re.search(rb"<html[\s>]", head[:2048], re.I) else "xml"
    if head.startswith(b"<"):
        if _HTML_START.search(head[:2048]):
            return "html"
        return "xml"
    return None


def _delimited(data: bytes) -> bool:
    """Pipe- or tab-separated text with a consistent column count on its first lines."""
    lines = [ln for ln in data[:16384].splitlines()[:20] if ln.strip()]
    if len(lines) < 3:
        return False
    for sep in (b"|", b"\t"):
        counts = {ln.count(sep) for ln in lines[:-1]}
        if len(counts) == 1 and min(counts) >= 2:
            return True
    return False


def from_name(filename: str | None, content_type: str | None) -> Kind | None:
    if filename:
        kind = _EXTENSIONS.get(PurePosixPath(filename.lower()).suffix)
        if kind:
            return kind
    if content_type:
        base = content_type.split(";", 1)[0].strip().lower()
        if base.startswith("image/"):
            return "image"
        return _CONTENT_TYPES.get(base)
    return None


def sniff(data: bytes, filename: str | None = None, content_type: str | None = None) -> Kind:
    """Bytes decide first; the name and declared type only break ties among text formats."""
    kind = _magic(data)
    if kind:
        return kind
    named = from_name(filename, content_type)
    if named == "email":
        return "email"
    if named in ("csv", "xml", "html"):
        return "email" if looks_like_email(data) else named
    if looks_like_email(data):
        return "email"
    markup = _markup_kind(data)
    if markup:
        return markup
    if named == "text" and _delimited(data):
        return "csv"
    if named in ("text", "image", "pdf", "zip", "gzip", "ole"):
        # a declared binary type whose magic is absent is read as text if it is text, else stored unread
        return "text" if named == "text" or _is_text(data) else "unknown"
    if content_type and content_type.split("/", 1)[0].strip().lower() in ("audio", "video", "image", "font"):
        return "unknown"  # declared media without its magic number: not something to read as text
    if _is_text(data):
        return "csv" if _delimited(data) else "text"
    return "unknown"


def _is_text(data: bytes) -> bool:
    sample = data[:8192]
    if bom_codec(sample):
        return True
    if b"\x00" in sample:
        return False
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    if controls > len(sample) // 100:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:
            return True  # a character cut by the sample's end
    high = sum(1 for b in sample if b >= 0x80)
    return high <= len(sample) * 0.3  # legacy 8-bit text is mostly ASCII
