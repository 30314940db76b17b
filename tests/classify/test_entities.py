from classify.doctype import RuleClassifier
from classify.entities import find_case_refs, find_emails

LEGACY = r"\b[A-Z]{2,4}-\d{4}-\d{4,8}\b"


def test_own_reference_found_exactly() -> None:
    refs = find_case_refs("Re: your case CW-2026-000042-K please", legacy_pattern=LEGACY)
    assert [(r.value, r.confidence) for r in refs] == [("CW-2026-000042-K", 1.0)]


def test_ocr_confusions_in_digits_are_undone_with_lower_confidence() -> None:
    refs = find_case_refs("Reference: CW-2O26-OOOO4Z-K")
    assert [r.value for r in refs] == ["CW-2026-000042-K"]
    assert refs[0].confidence < 1.0
    assert refs[0].raw == "CW-2O26-OOOO4Z-K"


def test_legacy_reference_found_and_own_reference_not_taken_for_legacy() -> None:
    text = "about CM-2025-004817 and CW-2026-000042-K"
    refs = find_case_refs(text, legacy_pattern=LEGACY)
    assert [r.value for r in refs] == ["CM-2025-004817", "CW-2026-000042-K"]


def test_no_own_reference_inside_a_longer_word() -> None:
    assert find_case_refs("XCW-2026-000042-K and CW-2026-000042-KX") == []


def test_each_reference_once_in_order() -> None:
    refs = find_case_refs("CM-2025-000002 then CM-2025-000001 then CM-2025-000002", legacy_pattern=LEGACY)
    assert [r.value for r in refs] == ["CM-2025-000002", "CM-2025-000001"]


def test_emails_lowercased() -> None:
    assert [e.value for e in find_emails("write to Jane.Doe@Example.COM.")] == ["jane.doe@example.com"]


def test_doc_type_rules_subject_counts_double() -> None:
    c = RuleClassifier()
    assert c.classify("Formal complaint", "I want to cancel").doc_type == "complaint"
    assert c.classify("", "I am in arrears and missed a payment").doc_type == "arrears"
    assert c.classify("hello", "just a question").doc_type == "general_enquiry"
