"""Entities found in an item's text, each with position and confidence.

Case references (``classify.case_refs``), email addresses, phone numbers in E.164
(phonenumbers, default region configurable), account and policy numbers (configurable
patterns), postcodes (UK by default), person names (``classify.people``), dates and money
amounts (``classify.quantities``).  ``find_entities`` runs them all with one ``EntityConfig``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import phonenumbers

from classify.case_refs import DEFAULT_LEGACY_PATTERN, find_case_refs
from classify.entity import Entity, compile_pattern, in_order, keep_best
from classify.people import find_names
from classify.quantities import find_amounts, find_dates
from classify.refcheck import DIGITISH, OCR_TO_DIGIT

__all__ = ["DEFAULT_ACCOUNT_PATTERNS", "DEFAULT_POSTCODE_PATTERN", "Entities", "Entity", "EntityConfig",
           "find_accounts", "find_case_refs", "find_emails", "find_entities", "find_phones", "find_postcodes"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

# Group "num" (if present) is the account number; letters OCR reads for digits are undone in it.
DEFAULT_ACCOUNT_PATTERNS: tuple[str, ...] = (
    rf"(?<![A-Za-z0-9-])(?P<num>(?:ACC|ACCT|POL|AC|PN)[-/ ]?[{DIGITISH}]{{4,12}})(?![A-Za-z0-9]|-\d)",
    r"(?i:\b(?:account|acct|policy|customer|membership)[ \t]*(?:number|no\.?|num|#|ref(?:erence)?)[ \t]*[:#.]?)"
    r"[ \t]*(?P<num>[A-Z0-9][A-Z0-9/-]{3,24}[A-Z0-9])\b",
    # "Account: 22142500", "Policy: 7781 2345": the label alone, then a colon and a number with digits
    r"(?i:\b(?:account|acct|policy)[ \t]*:)[ \t]*(?P<num>\d[\d -]{4,22}\d)\b",
)
# A text with fewer digits holds no phone number ``find_phones`` keeps: a valid number has at least
# 4 national digits (the shortest in phonenumbers' metadata; a test checks it), one that is only
# possible needs 10.  Most mail has fewer left once references and dates are blanked out, and the
# phone matcher is the costliest pass over the text.
MIN_PHONE_DIGITS = 4
_DIGIT = re.compile(r"\d")
DEFAULT_POSTCODE_PATTERN = r"\b(?P<out>[A-Z]{1,2}[0-9][A-Z0-9]?)[ \t]{0,2}(?P<in>[0-9][A-Z]{2})\b"


@dataclass(frozen=True, slots=True)
class EntityConfig:
    own_ref_prefix: str = "CW"
    legacy_ref_pattern: str = DEFAULT_LEGACY_PATTERN
    phone_region: str = "GB"
    account_patterns: tuple[str, ...] = DEFAULT_ACCOUNT_PATTERNS
    postcode_pattern: str = DEFAULT_POSTCODE_PATTERN
    day_first: bool = True
    max_ref_edits: int = 2


@dataclass(frozen=True, slots=True)
class Entities:
    case_refs: list[Entity] = field(default_factory=list)
    emails: list[Entity] = field(default_factory=list)
    phones: list[Entity] = field(default_factory=list)
    accounts: list[Entity] = field(default_factory=list)
    postcodes: list[Entity] = field(default_factory=list)
    names: list[Entity] = field(default_factory=list)
    dates: list[Entity] = field(default_factory=list)
    amounts: list[Entity] = field(default_factory=list)

    def all(self) -> list[Entity]:
        return [*self.case_refs, *self.emails, *self.phones, *self.accounts, *self.postcodes, *self.names,
                *self.dates, *self.amounts]

    def as_evidence(self) -> dict[str, list[dict[str, object]]]:
        """JSON-able, for the audit log: value, raw, position, confidence (and role) per entity."""
        out: dict[str, list[dict[str, object]]] = {}
        for e in self.all():
            entry: dict[str, object] = {"value": e.value, "raw": e.raw, "start": e.start, "end": e.end,
                                        "confidence": round(e.confidence, 3)}
            if e.role:
                entry["role"] = e.role
            out.setdefault(e.kind, []).append(entry)
        return out


def find_entities(text: str, config: EntityConfig | None = None) -> Entities:
    c = config or EntityConfig()
    refs = find_case_refs(text, own_prefix=c.own_ref_prefix, legacy_pattern=c.legacy_ref_pattern,
                          max_edits=c.max_ref_edits)
    accounts = find_accounts(text, patterns=c.account_patterns)
    dates = find_dates(text, day_first=c.day_first)
    taken = [(e.start, e.end) for e in (*refs, *accounts, *dates)]
    blanked = _blank_out(text, taken)
    phones = [p for p in find_phones(blanked, region=c.phone_region)
              if not any(p.start < end and start < p.end for start, end in taken)
              ] if len(_DIGIT.findall(blanked)) >= MIN_PHONE_DIGITS else []
    return Entities(
        case_refs=refs, emails=find_emails(text), phones=phones, accounts=accounts,
        postcodes=find_postcodes(text, pattern=c.postcode_pattern), names=find_names(text), dates=dates,
        amounts=find_amounts(text),
    )


def _blank_out(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with these spans replaced by spaces (positions kept): a case reference's or a
    date's digits are not a phone number, and parsing them as candidates is the costly part."""
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def find_emails(text: str) -> list[Entity]:
    out: dict[str, Entity] = {}
    for m in _EMAIL.finditer(text):
        value = m.group(0).lower().rstrip(".")
        keep_best(out, Entity("email", value, m.start(), m.end(), 1.0, m.group(0)))
    return in_order(out)


def find_phones(text: str, *, region: str = "GB") -> list[Entity]:
    """Phone numbers as E.164 (national ones read in ``region``); numbers that are possible but not
    valid (reserved ranges such as 07700 900xxx) score lower."""
    out: dict[str, Entity] = {}
    for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
        digits = sum(ch.isdigit() for ch in m.raw_string)
        valid = phonenumbers.is_valid_number(m.number)
        # possible-only numbers (reserved ranges) must be written out in full, nationally or internationally
        if not valid and (digits < 10 or m.raw_string[:1] not in "+0("):
            continue
        value = phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        keep_best(out, Entity("phone", value, m.start, m.end, 0.9 if valid else 0.6, m.raw_string))
    return in_order(out)


def phone_variants(e164: str, *, region: str = "GB") -> list[str]:
    """The E.164 number and, for a number of ``region``, its national digits (``07700900123``):
    the store keeps national numbers national."""
    try:
        number = phonenumbers.parse(e164, region)
    except phonenumbers.NumberParseException:
        return [e164]
    variants = [phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)]
    if number.country_code == phonenumbers.country_code_for_region(region):
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        variants.append("".join(ch for ch in national if ch.isdigit()))
    return variants


def normalise_phone(value: str, *, region: str = "GB") -> str | None:
    """E.164 for a phone number as given (metadata, From of an SMS), or None if it is not one."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def find_accounts(text: str, *, patterns: Sequence[str] = DEFAULT_ACCOUNT_PATTERNS) -> list[Entity]:
    """Account and policy numbers, upper-case; look-alike letters in their digit run undone
    (lower confidence).  A pattern's group ``num`` (or the whole match) is the number."""
    out: dict[str, Entity] = {}
    for pattern in patterns:
        regex = compile_pattern(pattern, "CASEWORK_MATCH__ACCOUNT_PATTERNS")
        for m in regex.finditer(text):
            group = "num" if "num" in regex.groupindex else 0
            raw = m.group(group)
            if raw is None or not any(ch.isdigit() for ch in raw.translate(OCR_TO_DIGIT)):
                continue
            value, fixed = _undo_ocr_in_digits(raw.upper())
            if not any(ch.isdigit() for ch in value):
                continue
            keep_best(out, Entity("account_number", value, m.start(group), m.end(group), 0.7 if fixed else 0.9, raw))
    return in_order(out)


def _undo_ocr_in_digits(value: str) -> tuple[str, bool]:
    """``ACC-1O4233`` -> ``ACC-104233``: look-alike letters after the last digit-free prefix."""
    prefix = re.match(r"^[A-Z]*[-/ ]?", value)
    head = prefix.group(0) if prefix else ""
    tail = value[len(head):]
    if re.fullmatch(rf"[{DIGITISH}]+", tail) is None:
        return value, False
    fixed = tail.translate(OCR_TO_DIGIT)
    return head + fixed, fixed != tail


def find_postcodes(text: str, *, pattern: str = DEFAULT_POSTCODE_PATTERN) -> list[Entity]:
    """Postcodes, upper-case; with groups ``out`` and ``in`` written ``OUT IN``."""
    regex = compile_pattern(pattern, "CASEWORK_MATCH__POSTCODE_PATTERN")
    out: dict[str, Entity] = {}
    for m in regex.finditer(text):
        if {"out", "in"} <= set(regex.groupindex):
            value = f"{m.group('out')} {m.group('in')}".upper()
        else:
            value = " ".join(m.group(0).split()).upper()
        keep_best(out, Entity("postcode", value, m.start(), m.end(), 0.9, m.group(0)))
    return in_order(out)
