"""Turning bytes of unknown or mislabelled encoding into text, without ever failing."""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
import unicodedata
from collections.abc import Sequence

from charset_normalizer import from_bytes

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


# What raw 8-bit header bytes (no encoded-words) are written in by real mail software, as the
# superset codecs that decode them: Windows-1252 for Latin-1, GB18030 for GB2312/GBK, CP932 for
# Shift_JIS (NEC and IBM extensions such as circled digits), CP949 for EUC-KR.  The order breaks
# ties when the detector finds several equally clean readings of a short string.
MAIL_CODECS = ("cp1252", "gb18030", "cp932", "cp949", "big5hkscs", "cp1251", "koi8-r", "cp1250", "cp1253",
               "cp1254", "cp1257", "cp1255", "cp1256", "cp874")
_SINGLE_BYTE_SLACK = 0.05  # a declared single-byte charset is kept unless a reading this much cleaner exists


def _is_multibyte(codec: str) -> bool:
    return codec in ("gb18030", "cp932", "cp949", "big5hkscs", "big5", "shift_jis", "euc_kr", "johab") or \
        codec.startswith(("euc", "iso2022", "utf", "gb", "hz"))


def _strictly(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def detect_codec(sample: bytes, declared: Sequence[str | None] = ()) -> str | None:
    """The codec for raw 8-bit text of unknown charset (header fields, file names), or None if
    ``sample`` is ASCII.

    UTF-8 when the bytes are valid UTF-8; then a charset the message declares (for its parts) that
    decodes the sample cleanly: a multi-byte one whenever it decodes without error, a single-byte
    one (which decodes anything) unless charset-normalizer finds a clearly cleaner reading; then
    charset-normalizer's cleanest reading among ``MAIL_CODECS``, ties broken by that order.
    """
    if sample.isascii():
        return None
    if _strictly(sample, "utf-8"):
        return "utf-8"
    wanted = list(dict.fromkeys(c for c in (codec_for(d) for d in declared) if c and c != "utf-8"))
    candidates = list(dict.fromkeys([*wanted, *(codecs.lookup(c).name for c in MAIL_CODECS)]))
    chaos: dict[str, float] = {}
    for match in from_bytes(sample, cp_isolation=candidates):
        for encoding in match.could_be_from_charset:  # codecs giving the same text (cp1252 = cp1250 for 'é')
            with contextlib.suppress(LookupError):
                chaos.setdefault(codecs.lookup(encoding).name, match.chaos)
    best = min(chaos.values(), default=1.0)
    for codec in wanted:
        if _strictly(sample, codec) and (
            _is_multibyte(codec) or chaos.get(codec, 1.0) <= best + _SINGLE_BYTE_SLACK
        ):
            return codec
    if not chaos:
        return None
    rank = {c: i for i, c in enumerate(candidates)}
    return min(chaos, key=lambda c: (round(chaos[c] + _implausibility(sample, c), 2), rank.get(c, len(rank))))


_MIXED_WORD = re.compile(r"[A-Za-z][\u0400-\u04ff]|[\u0400-\u04ff][A-Za-z]")


def _implausibility(sample: bytes, codec: str) -> float:
    """What charset-normalizer cannot judge on a few bytes (it calls most short readings clean):
    text that is mostly Latin-1 symbols ('·¢Æ±' for GB2312 '发票') or typographic punctuation
    (Shift_JIS read as CP1251), control, unassigned or combining characters (Thai
    tone marks, Hebrew points: GB2312 read as CP874 or CP1255), half-width katakana (GB2312 read as
    CP932), Hangul mixed with Han characters
    (GB2312 read as CP949)."""
    text = sample.decode(codec, errors="replace")
    wide = [c for c in text if ord(c) > 127]
    if not wide:
        return 0.0
    odd = sum(1 for c in wide if "\u00a0" <= c <= "\u00bf" or c in "\u00d7\u00f7\ufffd"
              or "\u2010" <= c <= "\u206f" or "\uff61" <= c <= "\uff9f"
              or unicodedata.category(c) in ("Cc", "Co", "Cn", "Mn"))
    hangul = any("\uac00" <= c <= "\ud7a3" for c in wide)
    han = any("\u4e00" <= c <= "\u9fff" for c in wide)
    if han and not any("\u3040" <= c <= "\u309f" for c in wide):  # katakana among Han, no hiragana: Big5 misread
        odd += sum(1 for c in wide if "\u30a0" <= c <= "\u30ff")
    odd += len(_MIXED_WORD.findall(text))  # Latin and Cyrillic letters in one word: a Latin-2 text misread
    return 0.5 * min(1.0, odd / len(wide)) + (0.1 if hangul and han else 0.0)
