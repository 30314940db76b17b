"""The check character of the project's own case references, and repairing misread ones.

``CW-YYYY-NNNNNN-C``: ``C`` indexes the 19-letter alphabet ``ACDEFGHJKMNPQRTUVWX`` with the sum
of the 10 digits (year then number) weighted 1..10 from the left, mod 19.  casestore allocates
references with its own copy of this rule (casestore/refs.py; the packages may not import each
other); tests/classify/test_refcheck.py checks that both agree.

A single wrong digit always changes the sum mod 19 (19 is prime, weights and digit differences
are 1..18), so the check character catches it; ``repairs`` lists the references one or two
edits away that the check character accepts, for the matcher to look up in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECK_ALPHABET = "ACDEFGHJKMNPQRTUVWX"

# Letters (and marks) OCR reads in place of digits.  Each maps to one digit, so undoing them
# is certain once the check character agrees.
OCR_TO_DIGIT = str.maketrans({
    "O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1", "i": "1", "!": "1",
    "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2", "G": "6", "b": "6", "g": "9", "q": "9", "T": "7",
})
DIGITISH = "0-9OoDQIli|!SsBZzGbgqT"

# Digits OCR reads as other digits (shapes alike); used for two-edit repairs only.
DIGIT_CONFUSIONS: dict[str, str] = {
    "0": "689", "1": "74", "2": "7", "3": "85", "4": "91", "5": "63",
    "6": "058", "7": "12", "8": "0369", "9": "048",
}

MAX_REPAIRS = 24


@dataclass(frozen=True, slots=True)
class Repair:
    digits: str  # 10 digits: year then number
    check: str
    edits: int  # characters changed to make the check character agree


def check_char(digits: str) -> str:
    """The check character of the 10 digits ``YYYYNNNNNN``."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"expected 10 ASCII digits (year then number), got {digits!r}")
    total = sum(weight * int(d) for weight, d in enumerate(digits, start=1))
    return CHECK_ALPHABET[total % len(CHECK_ALPHABET)]


def is_valid(digits: str, check: str) -> bool:
    return len(digits) == 10 and digits.isascii() and digits.isdigit() and check_char(digits) == check


def repairs(digits: str, check: str, *, max_edits: int = 2) -> list[Repair]:
    """References at most ``max_edits`` characters from ``digits``/``check`` that are valid.

    Exactly valid input gives itself (0 edits).  One edit: any one digit changed, or the check
    character replaced.  Two edits: two digits changed into shapes OCR confuses them with
    (``DIGIT_CONFUSIONS``).  Fewer edits first; at most ``MAX_REPAIRS`` results.
    """
    if len(digits) != 10 or not digits.isdigit():
        return []
    if is_valid(digits, check):
        return [Repair(digits, check, 0)]
    out: list[Repair] = []
    seen: set[str] = set()

    def add(candidate: str, want: str, edits: int) -> None:
        if candidate not in seen and check_char(candidate) == want:
            seen.add(candidate)
            out.append(Repair(candidate, want, edits))

    if max_edits >= 1:
        if check in CHECK_ALPHABET:
            for i, d in enumerate(digits):
                for other in "0123456789":
                    if other != d:
                        add(digits[:i] + other + digits[i + 1:], check, 1)
        out.append(Repair(digits, check_char(digits), 1))  # the check character itself misread
        seen.add(digits)
    if max_edits >= 2 and check in CHECK_ALPHABET:
        for i in range(10):
            for j in range(i + 1, 10):
                for a in DIGIT_CONFUSIONS[digits[i]]:
                    for b in DIGIT_CONFUSIONS[digits[j]]:
                        add(digits[:i] + a + digits[i + 1:j] + b + digits[j + 1:], check, 2)
    out.sort(key=lambda r: r.edits)
    return out[:MAX_REPAIRS]
