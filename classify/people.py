"""Person names in text: "Name:" fields (also "Customer", "Policy holder", "Insured"..., beside
or above the name), "My name is", sign-offs and salutations (heuristics)."""

from __future__ import annotations

import re

from classify.entity import Entity, first_of, in_order, keep_best, lowered

_WORD = r"[A-Z][a-z'\u2019-]+(?:-[A-Z][a-z'\u2019]+)?"
_NAME = rf"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+)?{_WORD}(?:[ \t]+(?:[A-Z]\.?[ \t]+)?{_WORD}){{0,3}}"
_TITLE = re.compile(r"^(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+")

_LABEL = (r"(?:(?:full[ \t]+|customer[ \t]+|policy[ \t]?holder[ \t]+|account[ \t]+holder[ \t]+|your[ \t]+)?name"
          r"|customer|policy[ \t]?holder|account[ \t]+holder|insured|claimant|applicant)")
_FIELD = re.compile(rf"(?im)^[ \t]*{_LABEL}[ \t]*[:\-][ \t]*(?-i:({_NAME}))")
# "Policy holder" on one line, the name alone on the next (forms laid out label above value)
_FIELD_NEXT_LINE = re.compile(rf"(?im)^[ \t]*{_LABEL}[ \t]*:?[ \t]*\r?\n[ \t]*(?-i:({_NAME}))[ \t]*$")
_MY_NAME = re.compile(rf"(?i:\bmy name is|\bI am|\bthis is)[ \t]+({_NAME})")
_SIGN_OFF = re.compile(
    rf"(?i:yours[ \t]+(?:sincerely|faithfully|truly)|(?:kind|best|warm|many)[ \t]+(?:regards|wishes|thanks)"
    rf"|regards|sincerely|thanks|thank you|cheers)[ \t]*[,.!]?[ \t]*(?:\r?\n[ \t]*){{0,3}}({_NAME})[ \t]*(?:\r?\n|$)"
)
_SALUTATION = re.compile(rf"\b(?i:dear|hello|hi)[ \t]+({_NAME})")

NOT_NAMES = frozenset({
    "sir", "sirs", "madam", "team", "customer", "customers", "services", "service", "support", "account",
    "accounts", "department", "manager", "claims", "complaints", "colleague", "colleagues", "all", "there",
    "writing", "sorry", "afraid", "happy", "not", "unable", "still", "the", "a", "an", "please", "reference",
    "casework", "company", "regards", "thanks", "thank", "you", "out", "away", "on", "in", "at", "your",
})

CONF_FIELD = 0.9
CONF_SIGN_OFF = 0.8
CONF_MY_NAME = 0.7
CONF_SALUTATION = 0.4


# Where each pattern can start: one of these words (lower case), or the line of one (``first_of``).
_LABEL_WORDS = ("name", "customer", "holder", "insured", "claimant", "applicant")
_SIGN_OFF_WORDS = ("yours", "kind", "best", "warm", "many", "regards", "sincerely", "thank", "cheers")
_PATTERNS = (
    (_FIELD, CONF_FIELD, "field", _LABEL_WORDS, True),
    (_FIELD_NEXT_LINE, CONF_FIELD, "field", _LABEL_WORDS, True),
    (_SIGN_OFF, CONF_SIGN_OFF, "sign-off", _SIGN_OFF_WORDS, False),
    (_MY_NAME, CONF_MY_NAME, "my-name-is", ("my name is", "i am", "this is"), False),
    (_SALUTATION, CONF_SALUTATION, "salutation", ("dear", "hello", "hi"), False),
)


def find_names(text: str) -> list[Entity]:
    """Person names, titles removed, each once (most confident kept); ``role`` says the source."""
    found: dict[str, Entity] = {}
    low = lowered(text)
    for pattern, conf, role, words, line in _PATTERNS:
        start = first_of(low, words, line=line)
        if start is None:
            continue
        for m in pattern.finditer(text, start):
            raw = m.group(1).strip()
            value = _clean(raw)
            if value is None or (pattern is _FIELD_NEXT_LINE and len(value.split()) < 2):
                continue
            start = m.start(1)
            keep_best(found, Entity("person_name", value, start, start + len(raw), conf, raw, role))
    return in_order(found)


def _clean(raw: str) -> str | None:
    name = _TITLE.sub("", " ".join(raw.split()))
    words = name.split()
    while words and words[-1].lower().strip(".") in NOT_NAMES:
        words.pop()
    if not words or any(w.lower() in NOT_NAMES for w in words):
        return None
    return " ".join(words)
