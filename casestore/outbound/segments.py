"""How many SMS segments a text takes, as carriers (and Twilio) count them.

A text that fits the GSM 03.38 alphabet is sent in 7-bit septets: 160 in one SMS, 153 per
segment once it is split (the user-data header takes the rest); each character of the
extension table (``^{}\\[~]|€`` and form feed) takes two septets, and an escape pair is never split
across segments.  Anything else (an emoji, a Polish ``ł``, curly quotes) sends the whole text as
UCS-2: 70 UTF-16 code units in one SMS, 67 per segment, a surrogate pair never split.

Written here because no maintained library counts segments (the GSM codecs on PyPI only encode).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class SmsCount:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets or UTF-16 code units
    segments: int


def is_gsm(text: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def _pack(sizes: list[int], single: int, part: int) -> int:
    """Segments for characters of these sizes (units each), none split across two segments."""
    if sum(sizes) <= single:
        return 1 if sizes else 0
    segments, room = 1, part
    for size in sizes:
        if size > room:
            segments, room = segments + 1, part
        room -= size
    return segments


def count(text: str) -> SmsCount:
    """Encoding, length in units and number of segments of ``text`` (0 segments for '')."""
    if is_gsm(text):
        sizes = [2 if ch in GSM_EXTENSION else 1 for ch in text]
        return SmsCount("GSM-7", sum(sizes), _pack(sizes, GSM_SINGLE, GSM_PART))
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsCount("UCS-2", sum(sizes), _pack(sizes, UCS2_SINGLE, UCS2_PART))
