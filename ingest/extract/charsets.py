"""Turning bytes of unknown or mislabelled encoding into text, without ever failing."""

from __future__ import annotations

import codecs
import logging

log = logging.getLogger(__name__)

# Labels seen in the wild mapped to the codec that actually decodes such text (supersets where the
# label is the narrow official name, as browsers do: WHATWG encoding standard).
ALIASES: dict[str, str] = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949",
    "korean": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-unknown": "",
    "unknown-8bit": "",
    "unknown": "",
    "default": "",
    "x-user-defined": "",
}

_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def codec_for(label: str | None) -> str | None:
    """The Python codec for a declared charset label, or None if the label means nothing usable."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = ALIASES.get(name, name)
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def bom_codec(data: bytes) -> str | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    return None


def _is_iso2022(data: bytes) -> bool:
    return b"\x1b$B" in data or b"\x1b$@" in data or b"\x1b(J" in data


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few broken sequences (cut or corrupted), decoded with replacement characters."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for c in text if ord(c) > 127) - bad
    return text if good >= 4 * bad else None


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode ``data``; returns (text, codec used).

    Order: byte-order mark; UTF-8 when the bytes are non-ASCII and valid UTF-8 (a decisive test:
    text in other encodings practically never validates, and mislabelled UTF-8 is common), or
    undeclared and mostly valid UTF-8 (a few broken sequences become U+FFFD); the
    declared charset (through ALIASES); undeclared ISO-2022-JP escapes; the declared charset with
    replacement if under 2% of the text is lost; cp1252; latin-1 (never fails).
    """
    bom = bom_codec(data)
    if bom:
        return data.decode(bom, errors="replace"), bom
    declared_codec = codec_for(declared)
    if declared_codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-7"):
        try:
            return data.decode(declared_codec), declared_codec
        except UnicodeDecodeError:
            pass
    if not data.isascii():
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            mostly = _mostly_utf8(data)
            if mostly is not None and declared_codec in (None, "utf-8"):
                return mostly, "utf-8"
    if declared_codec:
        try:
            return data.decode(declared_codec), declared_codec
        except UnicodeDecodeError:
            pass
    if data.isascii() and _is_iso2022(data):
        try:
            return data.decode("iso2022_jp_ext"), "iso2022_jp_ext"
        except UnicodeDecodeError:
            pass
    if declared_codec:
        text = data.decode(declared_codec, errors="replace")
        if text.count("\ufffd") <= max(1, len(text) // 50):
            return text, declared_codec
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"
