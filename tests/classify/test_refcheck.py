"""classify/refcheck.py and casestore/refs.py each hold the check-character rule (the packages
may not import each other): they must agree."""

from __future__ import annotations

import random

from casestore import refs as store_refs
from classify import refcheck


def test_both_check_character_implementations_agree_on_10000_numbers() -> None:
    rng = random.Random(19)
    assert refcheck.CHECK_ALPHABET == store_refs.CHECK_ALPHABET
    for _ in range(10_000):
        year, number = rng.randint(1000, 9999), rng.randint(1, store_refs.MAX_NUMBER)
        ref = store_refs.format_ref(year, number)
        digits = f"{year:04d}{number:06d}"
        assert ref.endswith("-" + refcheck.check_char(digits))
        assert refcheck.is_valid(digits, ref[-1])


def test_every_single_digit_error_is_caught_and_repaired() -> None:
    digits = "2026004817"
    check = refcheck.check_char(digits)
    for i in range(10):
        for other in "0123456789":
            if other == digits[i]:
                continue
            wrong = digits[:i] + other + digits[i + 1:]
            assert not refcheck.is_valid(wrong, check)
            fixes = refcheck.repairs(wrong, check, max_edits=1)
            assert digits in {f.digits for f in fixes if f.edits == 1}


def test_two_confusable_digits_are_repaired() -> None:
    digits = "2026008812"
    check = refcheck.check_char(digits)
    wrong = "2026003312"  # 8 read as 3, twice
    assert [f.digits for f in refcheck.repairs(wrong, check, max_edits=1)].count(digits) == 0
    assert digits in {f.digits for f in refcheck.repairs(wrong, check, max_edits=2)}


def test_valid_input_repairs_to_itself_only() -> None:
    digits = "2025000042"
    assert refcheck.repairs(digits, refcheck.check_char(digits)) == [
        refcheck.Repair(digits, refcheck.check_char(digits), 0)]
