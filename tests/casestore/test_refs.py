from __future__ import annotations

import random
import re

import pytest

from casestore.refs import CHECK_ALPHABET, OWN_REF_PATTERN, check_char, format_ref, is_valid_ref, parse_ref


def test_alphabet_has_19_letters_without_ocr_confusables() -> None:
    assert len(CHECK_ALPHABET) == len(set(CHECK_ALPHABET)) == 19
    assert not set("BILOSZY") & set(CHECK_ALPHABET)


def test_format_and_parse_round_trip() -> None:
    ref = format_ref(2025, 42)
    assert re.fullmatch(r"CW-2025-000042-[A-Z]", ref)
    assert ref[-1] == check_char("2025000042")
    assert parse_ref(ref) == (2025, 42)
    assert is_valid_ref(ref)


def test_check_char_is_the_weighted_sum_mod_19() -> None:
    digits = "2025000042"
    total = sum(w * int(d) for w, d in enumerate(digits, start=1))
    assert check_char(digits) == CHECK_ALPHABET[total % 19]


@pytest.mark.parametrize("bad", ["", "CW-2025-000042", "cw-2025-000042-A", "CW-2025-42-A", " CW-2025-000042-A",
                                 "CW-2025-000042-B", "CW-٢٠٢٥-000042-A", "XX-2025-000042-A"])
def test_malformed_refs_are_invalid(bad: str) -> None:
    assert not is_valid_ref(bad)


@pytest.mark.parametrize(("year", "number"), [(999, 1), (2025, 0), (2025, 1_000_000)])
def test_format_rejects_out_of_range(year: int, number: int) -> None:
    with pytest.raises(ValueError):
        format_ref(year, number)


def test_check_char_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        check_char("20250000x2")


def test_every_single_digit_substitution_is_detected_for_every_position_and_digit_pair() -> None:
    # The check is linear: a substitution at position w changes the sum by w * (new - old).
    # So checking every (position, old, new) triple covers every possible reference.
    for weight in range(1, 11):
        for old in range(10):
            for new in range(10):
                if old != new:
                    assert (weight * (new - old)) % 19 != 0, (weight, old, new)


def test_single_substitutions_and_adjacent_transpositions_are_detected_on_real_refs() -> None:
    rng = random.Random(1234)
    samples = [(y, n) for y in (2024, 2025) for n in (1, 9, 10, 99_999, 999_999)]
    samples += [(rng.randint(1990, 2099), rng.randint(1, 999_999)) for _ in range(500)]
    for year, number in samples:
        ref = format_ref(year, number)
        digits = f"{year:04d}{number:06d}"
        for pos in range(10):
            for d in "0123456789":
                if d != digits[pos]:
                    changed = digits[:pos] + d + digits[pos + 1:]
                    assert check_char(changed) != ref[-1], (ref, changed)
            if pos < 9 and digits[pos] != digits[pos + 1]:
                swapped = digits[:pos] + digits[pos + 1] + digits[pos] + digits[pos + 2:]
                assert check_char(swapped) != ref[-1], (ref, swapped)


def test_pattern_finds_refs_in_text() -> None:
    ref = format_ref(2025, 123)
    found = re.findall(OWN_REF_PATTERN, f"Re: your case {ref}, and CW-2025-000124-B too")
    assert ("2025", "000123", ref[-1]) in found
