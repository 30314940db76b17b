"""The project's own case reference format: ``CW-YYYY-NNNNNN-C``.

``C`` is a check character: the sum of the 10 digits (YYYY then NNNNNN) weighted 1..10 from the
left, mod 19, indexes the 19-letter alphabet ``ACDEFGHJKMNPQRTUVWX`` (no B I L O S Z Y, which OCR
confuses with digits).  Because 19 is prime and every weight and every digit difference is
between 1 and 18, a single wrong digit always changes the sum mod 19; swapping adjacent digits
``a b`` changes it by ``a - b``, which is non-zero mod 19 unless ``a == b``.
"""

from __future__ import annotations

import re

CHECK_ALPHABET = "ACDEFGHJKMNPQRTUVWX"
PREFIX = "CW"
OWN_REF_PATTERN = rf"{PREFIX}-([0-9]{{4}})-([0-9]{{6}})-([{CHECK_ALPHABET}])"
MAX_NUMBER = 999_999

_OWN_REF = re.compile(OWN_REF_PATTERN)


def check_char(digits: str) -> str:
    """The check character of the 10 digits ``YYYYNNNNNN``."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"expected 10 ASCII digits (year then number), got {digits!r}")
    total = sum(weight * int(d) for weight, d in enumerate(digits, start=1))
    return CHECK_ALPHABET[total % len(CHECK_ALPHABET)]


def year_prefix(year: int) -> str:
    """The sequence key for a year's own-format references: ``CW-2025``."""
    return f"{PREFIX}-{year:04d}"


def format_ref(year: int, number: int) -> str:
    """``format_ref(2025, 42) == "CW-2025-000042-" + check char``."""
    if not 1000 <= year <= 9999:
        raise ValueError(f"year must have 4 digits, got {year}")
    if not 1 <= number <= MAX_NUMBER:
        raise ValueError(f"case number must be 1..{MAX_NUMBER}, got {number}")
    digits = f"{year:04d}{number:06d}"
    return f"{year_prefix(year)}-{number:06d}-{check_char(digits)}"


def parse_ref(ref: str) -> tuple[int, int] | None:
    """``(year, number)`` of a valid own-format reference, else None."""
    match = _OWN_REF.fullmatch(ref)
    if match is None:
        return None
    year, number, check = match.groups()
    if check_char(year + number) != check:
        return None
    return int(year), int(number)


def is_valid_ref(ref: str) -> bool:
    """Whether ``ref`` is exactly an own-format reference with the right check character."""
    return parse_ref(ref) is not None
