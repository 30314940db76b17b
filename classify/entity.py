"""The ``Entity`` record every finder returns, and the helpers finders share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from classify.errors import BadPattern


@dataclass(frozen=True, slots=True)
class Entity:
    """Something found in an item's text: ``value`` normalised, ``raw`` as written at ``start:end``.

    ``role`` says where a name came from (field, sign-off, salutation...) or how a reference was
    read (exact, ocr, repaired); ``confidence`` is 0..1.
    """

    kind: str
    value: str
    start: int
    end: int
    confidence: float
    raw: str
    role: str = ""


@lru_cache(maxsize=64)
def compile_pattern(pattern: str, setting: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise BadPattern(f"pattern {pattern!r} does not compile: {exc}; fix {setting}") from exc


def keep_best(found: dict[str, Entity], entity: Entity) -> None:
    """Keep one entity per value: the most confident, else the first seen."""
    current = found.get(entity.value)
    if current is None or entity.confidence > current.confidence:
        found[entity.value] = entity


def lowered(text: str) -> str | None:
    """``text`` in lower case when it is ASCII (positions unchanged), else None: what ``first_of``
    searches.  Only for ASCII text is "a case-insensitive pattern over ASCII words can match only
    where the lower-cased text holds one of them" exact: Unicode case folding lets a few other
    characters (the Kelvin sign, the long s) match ASCII letters."""
    return text.lower() if text.isascii() else None


def first_of(low: str | None, words: Sequence[str], *, line: bool = False) -> int | None:
    """Where a case-insensitive pattern that can only start at one of ``words`` may first match:
    the first position of any of them in ``low`` (``lowered``), or None when none is there (the
    pattern cannot match at all); 0 when ``low`` is None (not ASCII: search everything).  With
    ``line``, the start of that position's line (for a pattern that starts at ``^``).
    ``pattern.finditer(text, start)`` then yields exactly what ``pattern.finditer(text)`` does:
    nothing can start before it, and look-behinds and ``\\b`` still see the text before it.
    The regular expressions of the entity finders try their case-insensitive alternatives at every
    position of a text; skipping to the first place they can start halves ``find_entities``."""
    if low is None:
        return 0
    found = [at for word in words if (at := low.find(word)) >= 0]
    if not found:
        return None
    start = min(found)
    return low.rfind("\n", 0, start) + 1 if line else start


def in_order(found: dict[str, Entity]) -> list[Entity]:
    return sorted(found.values(), key=lambda e: (e.start, -e.confidence))
