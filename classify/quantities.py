"""Dates and money amounts in text, normalised (ISO dates; ``GBP 1234.56``)."""

from __future__ import annotations

import re
from datetime import date

from classify.entity import Entity, first_of, in_order, keep_best, lowered

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTH = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?" \
         r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,2})[/.](\d{1,2})[/.](\d{4}|\d{2})(?![\d/-]|\.\d)")
_DAY_MONTH = re.compile(rf"(?i)\b(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+{_MONTH}\.?,?\s+(\d{{4}})\b")
_MONTH_DAY = re.compile(rf"(?i)\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b")

_CURRENCY = {"£": "GBP", "$": "USD", "€": "EUR", "gbp": "GBP", "usd": "USD", "eur": "EUR",
             "pounds": "GBP", "pound": "GBP", "dollars": "USD", "euros": "EUR", "euro": "EUR"}
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"
_PREFIXED = re.compile(rf"(?i)(£|\$|€|\bGBP|\bUSD|\bEUR)\s?{_NUMBER}(?![\d,])")
_DIGIT = re.compile(r"\d")
_MONTH_STEMS = tuple(_MONTHS)  # "jan" ... "dec": every spelling _MONTH allows begins with one
_SUFFIXED = re.compile(rf"(?i)(?<![\d.,£$€]){_NUMBER}\s?(GBP|USD|EUR|pounds?|dollars|euros?)\b")


def find_dates(text: str, *, day_first: bool = True) -> list[Entity]:
    """Dates as ISO ``YYYY-MM-DD``; ambiguous numeric dates (both parts <= 12) score lower."""
    found: dict[str, Entity] = {}

    def add(m: re.Match[str], y: int, mo: int, d: int, conf: float) -> None:
        try:
            value = date(y, mo, d).isoformat()
        except ValueError:
            return
        keep_best(found, Entity("date", value, m.start(), m.end(), conf, m.group(0)))

    if _DIGIT.search(text) is None:  # every date pattern has digits (most mail has none)
        return []
    for m in _ISO.finditer(text):
        add(m, int(m.group(1)), int(m.group(2)), int(m.group(3)), 0.95)
    for m in _NUMERIC.finditer(text):
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        year = y + 2000 if y < 100 and len(m.group(3)) == 2 else y
        d, mo = (a, b) if day_first else (b, a)
        if mo > 12 and d <= 12:
            d, mo = mo, d
        add(m, year, mo, d, 0.6 if a <= 12 and b <= 12 and a != b else 0.85)
    month = first_of(lowered(text), _MONTH_STEMS)  # both patterns below name a month
    if month is not None:
        for m in _DAY_MONTH.finditer(text):
            add(m, int(m.group(3)), _MONTHS[m.group(2)[:3].casefold()], int(m.group(1)), 0.95)
        for m in _MONTH_DAY.finditer(text, month):  # starts at its month
            add(m, int(m.group(3)), _MONTHS[m.group(1)[:3].casefold()], int(m.group(2)), 0.95)
    return in_order(found)


def find_amounts(text: str) -> list[Entity]:
    """Money amounts with a currency sign or code: value ``"GBP 1234.56"``."""
    found: dict[str, Entity] = {}
    if _DIGIT.search(text) is None:
        return []
    low = lowered(text)
    prefixed = first_of(low, ("£", "$", "€", "gbp", "usd", "eur"))  # starts at its currency
    for m in _PREFIXED.finditer(text, prefixed) if prefixed is not None else ():
        value = _amount(_CURRENCY[m.group(1).lower()], m.group(2), m.group(3))
        keep_best(found, Entity("amount", value, m.start(), m.end(), 0.95, m.group(0)))
    if first_of(low, ("gbp", "usd", "eur", "pound", "dollar")) is None:  # ends with one of them
        return in_order(found)
    for m in _SUFFIXED.finditer(text):
        value = _amount(_CURRENCY[m.group(3).lower()], m.group(1), m.group(2))
        keep_best(found, Entity("amount", value, m.start(), m.end(), 0.85, m.group(0)))
    return in_order(found)


def _amount(currency: str, whole: str, fraction: str | None) -> str:
    cents = (fraction or "0").ljust(2, "0")
    return f"{currency} {int(whole.replace(',', ''))}.{cents}"
