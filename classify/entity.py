"""The ``Entity`` record every finder returns, and the helpers finders share."""

from __future__ import annotations

import re
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


def in_order(found: dict[str, Entity]) -> list[Entity]:
    return sorted(found.values(), key=lambda e: (e.start, -e.confidence))
