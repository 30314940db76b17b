"""Entities found in an item's text: case references and email addresses, each with position.

This is the foundation's version: references in the project's own format and in a configurable
legacy pattern, with the usual OCR confusions in digit positions undone (O->0, l/I->1, S->5,
B->8, Z->2) and scored lower than an exact hit. Phones, account numbers, postcodes, names,
dates and amounts arrive with the matching issue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from classify.errors import BadPattern

_OCR_DIGITS = str.maketrans({"O": "0", "o": "0", "D": "0", "I": "1", "l": "1", "|": "1", "S": "5", "B": "8", "Z": "2"})
_DIGITISH = r"[0-9OoDIl|SBZ]"
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str
    value: str
    start: int
    end: int
    confidence: float
    raw: str


@lru_cache(maxsize=16)
def _own_ref_regex(prefix: str) -> re.Pattern[str]:
    p = re.escape(prefix)
    return re.compile(
        rf"(?<![A-Za-z0-9]){p}\s?-\s?({_DIGITISH}{{4}})\s?-\s?({_DIGITISH}{{6}})\s?-\s?([A-Z])(?![A-Za-z0-9])"
    )


@lru_cache(maxsize=16)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadPattern(
            f"legacy reference pattern {pattern!r} does not compile: {exc}; fix CASEWORK_MATCH__LEGACY_REF_PATTERN"
        ) from exc


def find_case_refs(text: str, *, own_prefix: str = "CW", legacy_pattern: str = "") -> list[Entity]:
    """Case references in ``text``, in order of appearance, each once (the first position kept)."""
    found: dict[str, Entity] = {}
    for m in _own_ref_regex(own_prefix).finditer(text):
        year, number, check = m.group(1), m.group(2), m.group(3)
        clean_year, clean_number = year.translate(_OCR_DIGITS), number.translate(_OCR_DIGITS)
        value = f"{own_prefix}-{clean_year}-{clean_number}-{check}"
        exact = (clean_year, clean_number) == (year, number)
        _keep(found, Entity("case_ref", value, m.start(), m.end(), 1.0 if exact else 0.8, m.group(0)))
    if legacy_pattern:
        own_spans = [(e.start, e.end) for e in found.values()]
        for m in _compile(legacy_pattern).finditer(text):
            if any(m.start() < end and start < m.end() for start, end in own_spans):
                continue  # part of one of our own references
            _keep(found, Entity("case_ref", m.group(0), m.start(), m.end(), 1.0, m.group(0)))
    return sorted(found.values(), key=lambda e: e.start)


def find_emails(text: str) -> list[Entity]:
    out: dict[str, Entity] = {}
    for m in _EMAIL.finditer(text):
        _keep(out, Entity("email", m.group(0).lower().rstrip("."), m.start(), m.end(), 1.0, m.group(0)))
    return list(out.values())


def _keep(found: dict[str, Entity], entity: Entity) -> None:
    current = found.get(entity.value)
    if current is None or entity.confidence > current.confidence:
        found[entity.value] = entity
