from __future__ import annotations

from casestore.validation import no_nul


def test_no_nul_cleans_strings_keys_and_nested_values() -> None:
    value = {"k\x00": ["v\x00", ("t\x00", 1)], "n": {"deep": "a\x00b"}, "ok": None}
    assert no_nul(value) == {"k": ["v", ["t", 1]], "n": {"deep": "ab"}, "ok": None}
    assert no_nul("x\x00") == "x" and no_nul(3) == 3


def test_no_nul_keeps_clean_values_and_copes_with_what_json_cannot_write() -> None:
    clean = {"reason": "fine", "evidence": {"refs": [{"value": "CM-1", "start": 3}]}, "literal": "\\u0000"}
    assert no_nul(clean) == clean
    assert no_nul(("a", "b")) == ["a", "b"]
    odd = {1: "v\x00", 2: {"x\x00"}}  # a set makes json.dumps fail: the slow path still cleans the rest
    assert no_nul(odd) == {1: "v", 2: {"x\x00"}}
