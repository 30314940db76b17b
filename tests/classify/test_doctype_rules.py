"""The rule classifier: one joined search per type must decide exactly as the rules one by one."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from classify.doctype import DEFAULT_RULES, RuleClassifier, TypeRule

CFPB = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "labelled" / \
    "cfpb__complaints_sample_2015-2020_labelled.csv"


def _narratives(n: int) -> list[str]:
    with CFPB.open(encoding="utf-8", newline="") as f:
        texts = [row["Consumer complaint narrative"] for row in csv.DictReader(f)]
    return [t for t in texts if t][:n]


@pytest.mark.skipif(not CFPB.is_file(), reason=f"corpus not found at {CFPB}")
def test_joined_search_decides_as_rule_by_rule_on_real_complaints() -> None:
    rules = {**DEFAULT_RULES, "odd": (TypeRule("overdue fees", "all"), TypeRule("refund", "any"), r"(a)\1")}
    joined = RuleClassifier(rules)
    one_by_one = RuleClassifier(rules)
    one_by_one._any_of = dict.fromkeys(one_by_one._any_of)  # no joined pattern: every rule searched
    assert joined._any_of["complaint"] is not None and joined._any_of["odd"] is None  # back-reference
    texts = _narratives(400)
    for i, text in enumerate(texts):
        subject = texts[i - 1][:60]
        assert joined.classify(subject, text) == one_by_one.classify(subject, text), text[:200]


def test_a_type_scores_its_subject_hits_double() -> None:
    guess = RuleClassifier().classify("Formal complaint", "I was charged twice and I am unhappy.")
    assert guess.doc_type == "complaint" and guess.score == 2 + 1 + 2  # complain, unhappy, fuzzy phrase
