from __future__ import annotations

import pytest

from classify.doctype import RuleClassifier, TypeRule
from classify.entities import (
    find_accounts,
    find_case_refs,
    find_emails,
    find_entities,
    find_phones,
    find_postcodes,
    phone_variants,
)
from classify.people import find_names
from classify.quantities import find_amounts, find_dates
from classify.refcheck import check_char

LEGACY = r"\b[A-Z]{2,4}-\d{4}-\d{4,8}\b"
GOOD = f"CW-2026-000042-{check_char('2026000042')}"


def test_own_reference_found_exactly() -> None:
    refs = find_case_refs(f"Re: your case {GOOD} please", legacy_pattern=LEGACY)
    assert [(r.value, r.confidence, r.role) for r in refs] == [(GOOD, 1.0, "exact")]


def test_ocr_look_alike_letters_are_undone_when_the_check_character_agrees() -> None:
    raw = GOOD.replace("2026", "2O26").replace("000042", "OOOO4Z")
    refs = find_case_refs(f"Reference: {raw}")
    assert [r.value for r in refs] == [GOOD]
    assert refs[0].confidence < 1.0 and refs[0].role == "ocr" and refs[0].raw == raw


def test_a_wrong_digit_gives_repaired_candidates_including_the_right_one() -> None:
    wrong = GOOD.replace("000042", "000047")
    refs = find_case_refs(wrong)
    assert GOOD in [r.value for r in refs]
    assert all(r.role == "repaired" and r.confidence <= 0.5 for r in refs)


def test_legacy_reference_found_and_own_reference_not_taken_for_legacy() -> None:
    refs = find_case_refs(f"about CM-2025-004817 and {GOOD}", legacy_pattern=LEGACY)
    assert [r.value for r in refs] == ["CM-2025-004817", GOOD]


def test_legacy_reference_with_ocr_letters() -> None:
    refs = find_case_refs("about CM-2O25-OO4817.", legacy_pattern=LEGACY)
    assert [(r.value, r.role) for r in refs] == [("CM-2025-004817", "legacy-ocr")]


def test_a_reference_wrapped_after_a_hyphen_is_read_whole() -> None:
    # as pdfium reads a narrow table cell Chromium printed (benchmarks/unseen_forms.py)
    text = f"File ref CM-2024-\n300141\nCase no. {GOOD[:8]}\n{GOOD[8:]}\nApplicant Rhys"
    refs = find_case_refs(text)
    assert [r.value for r in refs] == ["CM-2024-300141", GOOD]
    assert text[refs[0].start:refs[0].start + 8] == "CM-2024-"  # positions still point into the text
    assert [r.value for r in find_case_refs("CM-2024-\n\n300141 and CM-2024-300141x")] == []  # a blank line ends it


def test_no_own_reference_inside_a_longer_word() -> None:
    assert find_case_refs(f"X{GOOD} and {GOOD}X", legacy_pattern="") == []


def test_each_reference_once_in_order() -> None:
    refs = find_case_refs("CM-2025-000002 then CM-2025-000001 then CM-2025-000002", legacy_pattern=LEGACY)
    assert [r.value for r in refs] == ["CM-2025-000002", "CM-2025-000001"]


def test_emails_lowercased() -> None:
    assert [e.value for e in find_emails("write to Jane.Doe@Example.COM.")] == ["jane.doe@example.com"]


def test_phones_in_e164_with_position() -> None:
    text = "call 07911 123456 or +44 (0)20 7946 0000, reserved 07700 900123"
    phones = find_phones(text)
    assert [p.value for p in phones] == ["+447911123456", "+442079460000", "+447700900123"]
    assert text[phones[0].start:phones[0].end] == "07911 123456"
    assert phones[2].confidence < phones[0].confidence  # possible but not valid
    assert phone_variants("+447911123456") == ["+447911123456", "07911123456"]


def test_phones_not_taken_from_references_or_dates() -> None:
    ents = find_entities("CM-2025-004817 on 2025-03-01, account ACC-104233")
    assert ents.phones == []


def test_accounts_postcodes_names_dates_amounts() -> None:
    text = ("Account number: ACC-1O4233\nPolicy no. POL-55512\nPostcode: sw1a 1aa LS1 4AB\n"
            "Name: Mrs Jane Doe\nPaid £1,250.50 and 30 EUR on 3 March 2025 and 12/04/2025.\n\n"
            "Yours sincerely,\nJohn Smith\n")
    assert [(a.value, a.confidence < 0.9) for a in find_accounts(text)] == [("ACC-104233", True), ("POL-55512", False)]
    assert [p.value for p in find_postcodes(text)] == ["LS1 4AB"]  # upper-case only: "sw1a 1aa" is not taken
    names = find_names(text)
    assert [(n.value, n.role) for n in names] == [("Jane Doe", "field"), ("John Smith", "sign-off")]
    assert [d.value for d in find_dates(text)] == ["2025-03-03", "2025-04-12"]
    assert [a.value for a in find_amounts(text)] == ["GBP 1250.50", "EUR 30.00"]


def test_salutation_names_are_weak_and_generic_ones_ignored() -> None:
    names = find_names("Dear Sir or Madam,\nDear Mr Whitaker,\n")
    assert [(n.value, n.role) for n in names] == [("Whitaker", "salutation")]


def test_evidence_is_json_ready() -> None:
    ev = find_entities(f"{GOOD} from jane@example.com").as_evidence()
    assert ev["case_ref"][0]["value"] == GOOD and ev["email"][0]["start"] > 0


def test_doc_type_rules_subject_counts_double_and_fuzzy_rules() -> None:
    c = RuleClassifier()
    assert c.classify("Formal complaint", "I want to cancel").doc_type == "complaint"
    assert c.classify("", "I am in arrears and missed a payment").doc_type == "arrears"
    assert c.classify("hello", "just a question").doc_type == "general_enquiry"
    fuzzy = RuleClassifier({"claim": (TypeRule("claim form", "fuzzy"),), "other": (TypeRule("a b", "all"),)})
    assert fuzzy.classify("", "Clam form attached").doc_type == "claim"  # OCR dropped a letter


def _everything_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The finders as they were before their short cuts: every pattern over the whole text."""
    import re

    from classify import entities, people, quantities

    monkeypatch.setattr(people, "first_of", lambda low, words, line=False: 0)
    monkeypatch.setattr(quantities, "first_of", lambda low, words, line=False: 0)
    monkeypatch.setattr(quantities, "_DIGIT", re.compile(""))
    monkeypatch.setattr(entities, "MIN_PHONE_DIGITS", 0)


SHORT_CUT_TEXTS = [
    "Kind regards,\r\nJane Smith\r\n", "KIND REGARDS\nJANE SMITH", "Dear Mr Brown, thanks\nTom Jones",
    "Name: Alice Walker\nPolicy holder\nBob Stone", "my name is Eve Adams and I am Carl Lee",
    "\u212aind regards,\nJane Smith",  # Kelvin sign: matches "k" case-insensitively; not ASCII
    "paid \u00a3120.50 and $30, 45 GBP, 12 euros, 3 Dollars, EUR 7", "on 1st of MARCH 2024 and May 5, 2023",
    "due 2024-02-30 or 31/12/2023; \u017fep 3 2020", "call 07700 900123 or +44 20 7946 0018 or 123",
    "ref 12 34", "hi", "", "no digits at all here\nthanks", "customer\n\nCustomer: X", "Sincerely yours,\nAl Bo",
]


def _all_found(text: str) -> list[tuple[str, str, int, int, float, str]]:
    return [(e.kind, e.value, e.start, e.end, e.confidence, e.role) for e in find_entities(text).all()]


def test_short_cuts_find_exactly_what_searching_everything_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``first_of`` (skip to where a pattern can start, or skip it), the digit checks and the phone
    matcher's digit floor change nothing that is found: the same entities as every pattern over
    the whole text, on real complaints, the corpus's mail and texts made to hit the edges."""
    from tests.classify.test_doctype_rules import CFPB, _narratives

    texts = list(SHORT_CUT_TEXTS)
    if CFPB.is_file():
        texts += _narratives(300)
    corpus = CFPB.parents[1] / "email"
    if corpus.is_dir():  # their first 20,000 characters: the rest is mostly attachments in base64
        texts += [p.read_bytes()[:20_000].decode("utf-8", "replace") for p in sorted(corpus.glob("*.eml"))]
    fast = [_all_found(t) for t in texts]
    _everything_searched(monkeypatch)
    slow = [_all_found(t) for t in texts]
    for text, a, b in zip(texts, fast, slow, strict=True):
        assert a == b, text[:200]
    assert sum(map(len, fast)) > 100  # the texts do hold entities


def test_no_valid_phone_number_is_shorter_than_the_digit_floor() -> None:
    """``MIN_PHONE_DIGITS`` holds for phonenumbers' metadata: no region's numbers are shorter."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    from classify.entities import MIN_PHONE_DIGITS

    shortest = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        desc = PhoneMetadata.metadata_for_region(region).general_desc
        shortest += [n for n in desc.possible_length or () if n > 0]
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        shortest += [n for n in PhoneMetadata.metadata_for_nongeo_region(code).general_desc.possible_length if n > 0]
    assert min(shortest) >= MIN_PHONE_DIGITS
