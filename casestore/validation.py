"""Cleaning and checking of values before they are stored (same rules on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from casestore.errors import InvalidInput

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE_TRUNK_IN_BRACKETS = re.compile(r"\(\s*0\s*\)")
_NUL_ESCAPED = "\\u0000"  # how json.dumps writes a NUL character


def no_nul(value: Any) -> Any:
    """``value`` with NUL characters removed from every string in it (dicts and lists too).

    PostgreSQL refuses NUL in text and JSONB; extracted text from binary files often has some.
    """
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict | list | tuple) and not _may_hold_nul(value):
        return value if not isinstance(value, tuple) else list(value)  # the common case: one C-speed scan
    if isinstance(value, dict):
        return {no_nul(k): no_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [no_nul(v) for v in value]
    return value


def _may_hold_nul(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    try:
        return _NUL_ESCAPED in json.dumps(value, default=str)
    except (TypeError, ValueError):  # keys JSON cannot write, cycles: look at every value instead
        return True


def text_or_none(value: str | None) -> str | None:
    """Stripped text without NUL characters, or None for missing or blank."""
    if value is None:
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def required(field: str, value: str | None, *, max_len: int) -> str:
    """A stripped, non-empty value no longer than ``max_len`` characters."""
    cleaned = text_or_none(value)
    if cleaned is None:
        raise InvalidInput(f"{field} is required and must not be blank")
    return limited(field, cleaned, max_len=max_len)


def limited(field: str, value: str, *, max_len: int) -> str:
    if len(value) > max_len:
        raise InvalidInput(f"{field} is {len(value)} characters long; the limit is {max_len}")
    return value


def optional(field: str, value: str | None, *, max_len: int) -> str | None:
    cleaned = text_or_none(value)
    return None if cleaned is None else limited(field, cleaned, max_len=max_len)


def normalise_email(value: str | None) -> str | None:
    """Lower-case address, None if blank; InvalidInput if it does not look like name@domain.tld."""
    cleaned = text_or_none(value)
    if cleaned is None:
        return None
    if not _EMAIL.fullmatch(cleaned):
        raise InvalidInput(f"email {cleaned!r} is not an address like name@example.com; correct or blank it")
    return limited("email", cleaned.lower(), max_len=320)


def normalise_phone(value: str | None) -> str | None:
    """Digits only, with a leading ``+`` when written internationally (``+`` or ``00``).

    ``+44 (0)20 7946 0000`` and ``0044 (0)20 7946 0000`` both give ``+442079460000``.  A national
    number (``020 7946 0000``) stays national (``02079460000``): without a default country
    the two forms are not matched to each other.  None if there are no digits.
    """
    cleaned = text_or_none(value)
    if cleaned is None:
        return None
    international = cleaned.startswith("+")
    if international or cleaned.startswith("00"):
        cleaned = _PHONE_TRUNK_IN_BRACKETS.sub("", cleaned)
    digits = "".join(ch for ch in cleaned if ch.isascii() and ch.isdigit())
    if digits.startswith("00"):
        digits, international = digits[2:], True
    if not digits:
        return None
    return ("+" + digits if international else digits)[:32]


def phone_equivalents(normalised: str, *, region: str = "GB") -> list[str]:
    """The stored forms (``normalise_phone``) that name the same line as ``normalised``.

    The store keeps a number as it was written: ``+447911123456`` from an SMS, ``07911123456``
    from a CRM export.  For a number of ``region`` (``CASEWORK_MATCH__PHONE_REGION``) both forms
    are returned, so a look-up by one finds the other; anything ``phonenumbers`` cannot read is
    returned as given.
    """
    import phonenumbers  # only the prospect reconciliation needs it; keeps the import of this module light

    out = [normalised]
    try:
        number = phonenumbers.parse(normalised, region)
    except phonenumbers.NumberParseException:
        return out
    if number.country_code != phonenumbers.country_code_for_region(region):
        return out
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = "".join(ch for ch in phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
                       if ch.isdigit())
    out.extend(v for v in (e164, national) if v and v not in out)
    return out


def normalise_postcode(value: str | None) -> str | None:
    """Upper case without spaces: ``sw1a 1aa`` gives ``SW1A1AA``."""
    cleaned = text_or_none(value)
    if cleaned is None:
        return None
    return "".join(cleaned.split()).upper()[:32] or None


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_datetime(value: str) -> datetime:
    """ISO 8601 date or date-time (``2024-03-31``, ``2024-03-31T14:05:00Z``); naive means UTC."""
    cleaned = value.strip()
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            f"date {cleaned!r} is not ISO 8601; write it like 2024-03-31 or 2024-03-31T14:05:00Z"
        ) from None
    return as_utc(parsed)
