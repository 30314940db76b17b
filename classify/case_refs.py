"""Case references in text: the project's own format (check character) and legacy patterns.

OCR turns digits into look-alike letters (O/0, l/1/I, S/5, B/8, Z/2) and into other digits.
Look-alike letters in digit positions are undone; the check character then confirms the
reading.  When it does not, every reference one or two edits away that the check character
accepts is returned as a lower-confidence candidate: the matcher keeps only candidates that
exist in the store and agree with the sender or the content.

A reference wrapped after one of its hyphens (a narrow table cell: ``CM-2024-`` then ``300141``
on the next line) is read whole: the references are searched in ``unwrap_after_hyphens(text)``,
which has the same length, so positions still point into the text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from classify.entity import Entity, compile_pattern, in_order, keep_best
from classify.refcheck import DIGITISH, OCR_TO_DIGIT, repairs

DEFAULT_LEGACY_PATTERN = r"(?<![A-Za-z0-9-])[A-Z]{2,4}-\d{4}-\d{4,8}(?![A-Za-z0-9]|-\d)"

CONF_EXACT = 1.0
CONF_LETTERS_UNDONE = 0.9  # look-alike letters undone, check character agrees
CONF_ONE_EDIT = 0.5
CONF_TWO_EDITS = 0.3
_SEP = r"\s?[-\u2010-\u2015~]\s?"
# A token that looks like a legacy reference with look-alike letters in its digit groups.
_LEGACY_OCR_TOKEN = re.compile(rf"(?<![A-Za-z0-9])([A-Z]{{2,4}}-)([{DIGITISH}-]{{6,20}})")


_WRAPPED_AFTER_HYPHEN = re.compile(r"(?<=[A-Za-z0-9]-)([ \t]*\r?\n[ \t]*)([A-Za-z0-9]+)")


def unwrap_after_hyphens(text: str) -> str:
    """``text`` with each word continued on the next line after a hyphen pulled up to that hyphen
    (the line break and spaces move after it): same length, other positions unchanged."""
    return _WRAPPED_AFTER_HYPHEN.sub(lambda m: m.group(2) + m.group(1), text)


@lru_cache(maxsize=16)
def _own_ref_regex(prefix: str) -> re.Pattern[str]:
    p = re.escape(prefix)
    d = f"[{DIGITISH}]"
    return re.compile(rf"(?<![A-Za-z0-9]){p}{_SEP}({d}{{4}}){_SEP}({d}{{6}}){_SEP}([A-Z0-9|])(?![A-Za-z0-9])")


def find_case_refs(text: str, *, own_prefix: str = "CW", legacy_pattern: str = DEFAULT_LEGACY_PATTERN,
                   max_edits: int = 2) -> list[Entity]:
    """Case references and repaired candidates in ``text`` in order; each value once (best kept).

    Roles: ``exact``, ``ocr`` (look-alike letters undone, check agrees), ``repaired`` (one or two
    edits to satisfy the check character), ``legacy`` and ``legacy-ocr``.
    """
    text = unwrap_after_hyphens(text)
    found: dict[str, Entity] = {}
    own_spans: list[tuple[int, int]] = []
    for m in _own_ref_regex(own_prefix).finditer(text):
        year, number, check = m.group(1), m.group(2), m.group(3)
        digits = (year + number).translate(OCR_TO_DIGIT)
        letters_undone = sum(a != b for a, b in zip(year + number, digits, strict=True))
        own_spans.append((m.start(), m.end()))
        for fix in repairs(digits, check, max_edits=max_edits):
            value = f"{own_prefix}-{fix.digits[:4]}-{fix.digits[4:]}-{fix.check}"
            if fix.edits == 0:
                conf, role = (CONF_EXACT, "exact") if letters_undone == 0 else (CONF_LETTERS_UNDONE, "ocr")
            else:
                conf, role = (CONF_ONE_EDIT if fix.edits == 1 else CONF_TWO_EDITS), "repaired"
            keep_best(found, Entity("case_ref", value, m.start(), m.end(), conf, m.group(0), role))
    if legacy_pattern:
        pattern = compile_pattern(legacy_pattern, "CASEWORK_MATCH__LEGACY_REF_PATTERN")
        for m in pattern.finditer(text):
            if not _inside(own_spans, m.start(), m.end()):
                keep_best(found, Entity("case_ref", m.group(0), m.start(), m.end(), CONF_EXACT, m.group(0), "legacy"))
        for token in _LEGACY_OCR_TOKEN.finditer(text):
            if _inside(own_spans, token.start(), token.end()):
                continue
            fixed = token.group(1) + token.group(2).translate(OCR_TO_DIGIT)
            if fixed == token.group(0):
                continue
            for m in pattern.finditer(fixed):  # same length, so positions still point into text
                start, end = token.start() + m.start(), token.start() + m.end()
                keep_best(found, Entity("case_ref", m.group(0), start, end, CONF_LETTERS_UNDONE * 0.9,
                                        text[start:end], "legacy-ocr"))
    return in_order(found)


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(start < e and s < end for s, e in spans)
