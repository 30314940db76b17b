"""Document type by rules: keywords and regexes per type, first the strongest score wins.

Types and their rules are data (``DEFAULT_RULES``) so they can be configured. The trainable model
that learns from agents' corrections arrives with the matching issue; until then this is the
whole classifier and says so in its evidence (``method: rules``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TYPE = "general_enquiry"

DEFAULT_RULES: Mapping[str, Sequence[str]] = {
    "complaint": (r"\bcomplain(t|ts|ing|ed)?\b", r"\bdissatisfied\b", r"\bunacceptable\b", r"\bunhappy\b"),
    "claim": (r"\bclaim(s|ing)?\b", r"\bdamage[sd]?\b", r"\breimburse(ment)?\b", r"\bcompensation\b"),
    "application": (r"\bappl(y|ying|ication)\b", r"\bsign(ing)? up\b", r"\bnew account\b"),
    "arrears": (r"\barrears\b", r"\boverdue\b", r"\bmissed (a |my )?payments?\b", r"\bpayment plan\b", r"\bdebt\b"),
    "change_of_details": (
        r"\bchange of (address|details|name)\b", r"\bnew address\b", r"\bupdate my (details|address)\b",
        r"\bmoved house\b",
    ),
    "cancellation": (r"\bcancel(l?ation|l?ing|l?ed)?\b", r"\bterminate\b", r"\bclose my account\b"),
}


@dataclass(frozen=True, slots=True)
class TypeGuess:
    doc_type: str
    score: float
    matched: tuple[str, ...]


class RuleClassifier:
    def __init__(self, rules: Mapping[str, Sequence[str]] = DEFAULT_RULES) -> None:
        self._rules = {t: [re.compile(p, re.IGNORECASE) for p in ps] for t, ps in rules.items()}

    def classify(self, subject: str, text: str) -> TypeGuess:
        """Subject hits count double; ties keep the order of the rules."""
        best = TypeGuess(DEFAULT_TYPE, 0.0, ())
        body = text[:20000]
        for doc_type, patterns in self._rules.items():
            score = 0.0
            matched: list[str] = []
            for pat in patterns:
                if pat.search(subject):
                    score += 2
                    matched.append(pat.pattern)
                elif pat.search(body):
                    score += 1
                    matched.append(pat.pattern)
            if score > best.score:
                best = TypeGuess(doc_type, score, tuple(matched))
        return best
