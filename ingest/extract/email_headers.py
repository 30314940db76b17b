"""Decoding email header fields robustly: raw 8-bit bytes, unknown charsets, broken encoded-words."""

from __future__ import annotations

import email.header
import email.utils
import re
from datetime import UTC, datetime
from email.message import Message

from ingest.extract.charsets import decode_text

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_MSG_ID = re.compile(r"<([^<>\s]+)>")
RAW_8BIT = re.compile("[\udc80-\udcff]")  # the parser's surrogate escapes of raw 8-bit bytes


def raw_header(msg: Message, name: str) -> str | None:
    """The first header ``name`` as the parser stored it (raw 8-bit bytes as surrogate escapes)."""
    name = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    name = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == name]


def unescape_raw(value: str, fallback_charset: str | None) -> str:
    """Undo the parser's surrogate escapes of raw 8-bit header bytes, guessing their charset."""
    if not RAW_8BIT.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    return decode_text(data, fallback_charset)[0]


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words decoded with charset aliases and fallbacks; plain text kept as is."""
    if "=?" not in value:
        return value
    try:
        chunks = email.header.decode_header(value)
    except (ValueError, LookupError, AssertionError):
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(decode_text(chunk, charset)[0])
    return "".join(out)


def header_text(msg: Message, name: str, fallback_charset: str | None = None) -> str:
    """A header's human-readable value, unfolded, whitespace collapsed ('' if absent)."""
    value = raw_header(msg, name)
    if value is None:
        return ""
    value = unescape_raw(value, fallback_charset)
    value = re.sub(r"\r?\n[ \t]+", " ", value)
    # encoded words separated only by whitespace are joined (RFC 2047 6.2); decode_header does that
    return " ".join(decode_words(value).split())


def addresses(msg: Message, name: str, fallback_charset: str | None = None) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs of all ``name`` headers; empty groups give nothing."""
    values = [unescape_raw(v, fallback_charset).replace("\r", " ").replace("\n", " ") for v in raw_headers(msg, name)]
    pairs: list[tuple[str, str]] = []
    for display, addr in email.utils.getaddresses(values):
        addr = addr.strip().strip("<>").lower()
        if not addr or ("@" not in addr and not addr.replace("-", "").isalnum()):
            continue
        pairs.append((" ".join(decode_words(display).split()), addr))
    if not pairs:
        # getaddresses gives up on some broken headers ('Name <a@b' or raw 8-bit); salvage addresses
        for value in values:
            for addr in re.findall(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", value):
                pairs.append(("", addr.lower()))
    return pairs


def message_ids(value: str | None) -> list[str]:
    """Message ids from a header value, angle brackets stripped; a bare id without brackets is kept."""
    if not value:
        return []
    found = _MSG_ID.findall(value)
    if found:
        return found
    bare = value.strip()
    return [bare] if bare and " " not in bare else []


def header_date(msg: Message) -> datetime | None:
    value = raw_header(msg, "date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(" ".join(value.split()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
