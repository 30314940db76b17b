"""Document type by rules, paperless-ngx style: each type has match rules (any word, all words,
literal phrase, regex, fuzzy phrase); the strongest score wins, subject hits count double.

Types and rules are data (``DEFAULT_RULES``; a plain string is a regex) so they can be
configured.  ``classify.doctype_model`` is the trainable model; ``DocTypeClassifier`` combines
both: a confident model wins, else the rules, and the evidence says which (``method``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rapidfuzz import fuzz

from classify.errors import BadPattern

if TYPE_CHECKING:
    from classify.doctype_model import DocTypeModel

DEFAULT_TYPE = "general_enquiry"
DOC_TYPES = ("complaint", "claim", "application", "arrears", "change_of_details", "cancellation", DEFAULT_TYPE)

Algorithm = Literal["any", "all", "literal", "regex", "fuzzy"]


@dataclass(frozen=True, slots=True)
class TypeRule:
    """One rule: ``any``/``all`` words of ``text``, the ``literal`` phrase, a ``regex``, or a
    ``fuzzy`` phrase (rapidfuzz partial_ratio >= ``min_ratio``), case-insensitive."""

    text: str
    algorithm: Algorithm = "regex"
    min_ratio: float = 90.0


RuleSpec = str | TypeRule

DEFAULT_RULES: Mapping[str, Sequence[RuleSpec]] = {
    "complaint": (r"\bcomplain(t|ts|ing|ed)?\b", r"\bdissatisfied\b", r"\bunacceptable\b", r"\bunhappy\b",
                  TypeRule("formal complaint", "fuzzy"), r"\bombudsman\b", r"\bappalled\b"),
    "claim": (r"\bclaim(s|ing)?\b", r"\bdamage[sd]?\b", r"\breimburse(ment)?\b", r"\bcompensation\b",
              r"\bstolen\b", r"\bburst pipe\b", TypeRule("claim form", "fuzzy")),
    "application": (r"\bappl(y|ying|ication)\b", r"\bsign(ing)? up\b", r"\bnew account\b", r"\bopen an account\b"),
    "arrears": (r"\barrears\b", r"\boverdue\b", r"\bmissed (a |my )?payments?\b", r"\bpayment plan\b", r"\bdebt\b",
                r"\bbehind (with|on) (my )?payments\b"),
    "change_of_details": (
        r"\bchange of (address|details|name)\b", r"\bnew address\b", r"\bupdate my (details|address)\b",
        r"\bmoved house\b", r"\bchanged my (name|address|phone)\b",
    ),
    "cancellation": (r"\bcancel(l?ation|l?ing|l?ed)?\b", r"\bterminate\b", r"\bclose my account\b"),
}


@dataclass(frozen=True, slots=True)
class TypeGuess:
    doc_type: str
    score: float
    matched: tuple[str, ...]
    method: str = "rules"


class _Compiled:
    def __init__(self, spec: RuleSpec) -> None:
        self.rule = spec if isinstance(spec, TypeRule) else TypeRule(spec, "regex")
        self.label = self.rule.text if self.rule.algorithm == "regex" else f"{self.rule.algorithm}:{self.rule.text}"
        words = self.rule.text.lower().split()
        # Plain words must appear as substrings of the lower-cased text before a regex is worth running.
        self.needles = [] if self.rule.algorithm in ("regex", "fuzzy") else (
            [self.rule.text.lower()] if self.rule.algorithm == "literal" else words)
        try:
            if self.rule.algorithm == "regex":
                self.patterns = [re.compile(self.rule.text, re.IGNORECASE)]
            elif self.rule.algorithm in ("any", "all"):
                self.patterns = [re.compile(rf"\b{re.escape(w)}\b", re.IGNORECASE) for w in words]
            elif self.rule.algorithm == "literal":
                self.patterns = [re.compile(rf"\b{re.escape(self.rule.text)}\b", re.IGNORECASE)]
            else:
                self.patterns = []
        except re.error as exc:
            raise BadPattern(f"document-type rule {self.rule.text!r} does not compile: {exc}") from exc

    @property
    def single(self) -> bool:
        """Whether the rule hits exactly when one of its patterns is found (not fuzzy, not all-words)."""
        return self.rule.algorithm in ("regex", "any", "literal")

    def hits(self, text: str, lowered: str) -> bool:
        """Whether the rule matches ``text`` (``lowered`` is ``text.lower()``, computed once)."""
        a = self.rule.algorithm
        if a == "fuzzy":
            return bool(text) and fuzz.partial_ratio(self.rule.text.lower(), lowered) >= self.rule.min_ratio
        if a == "all":
            return all(n in lowered for n in self.needles) and all(p.search(text) for p in self.patterns)
        if a == "regex":
            return any(p.search(text) for p in self.patterns)
        return any(n in lowered and p.search(text) for n, p in zip(self.needles, self.patterns, strict=True))


def _any_of(rules: Sequence[_Compiled]) -> re.Pattern[str] | None:
    """One pattern that is found exactly when any pattern of the type's one-pattern rules is: a
    type with no hit (most types, for most items) costs one search instead of one per rule.  None
    when the patterns cannot be joined (back-references, inline global flags)."""
    patterns = [p.pattern for r in rules if r.single for p in r.patterns]
    if len(patterns) < 2 or any(re.search(r"\\\d|\(\?P=|^\(\?[a-zA-Z]+\)", p) for p in patterns):
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    except re.error:
        return None


class RuleClassifier:
    def __init__(self, rules: Mapping[str, Sequence[RuleSpec]] = DEFAULT_RULES) -> None:
        self._rules = {t: [_Compiled(r) for r in rs] for t, rs in rules.items()}
        self._any_of = {t: _any_of(rs) for t, rs in self._rules.items()}

    def classify(self, subject: str, text: str) -> TypeGuess:
        """Subject hits count double; ties keep the order of the rules."""
        best = TypeGuess(DEFAULT_TYPE, 0.0, ())
        body = text[:20000]
        subject_lowered, body_lowered = subject.lower(), body.lower()
        for doc_type, rules in self._rules.items():
            score = 0.0
            matched: list[str] = []
            any_of = self._any_of[doc_type]
            skip_subject = any_of is not None and not any_of.search(subject)
            skip_body = any_of is not None and not any_of.search(body)
            for rule in rules:
                if rule.single and skip_subject and skip_body:
                    continue  # none of the type's one-pattern rules can hit: one search said so
                if not (rule.single and skip_subject) and rule.hits(subject, subject_lowered):
                    score += 2
                    matched.append(rule.label)
                elif not (rule.single and skip_body) and rule.hits(body, body_lowered):
                    score += 1
                    matched.append(rule.label)
            if score > best.score:
                best = TypeGuess(doc_type, score, tuple(matched))
        return best


class DocTypeClassifier:
    """Rules plus (optionally) the trained model: the model's type when it is at least
    ``min_model_score`` sure, else the rules' type (``method`` says which)."""

    def __init__(self, rules: RuleClassifier | None = None, model: DocTypeModel | None = None, *,
                 min_model_score: float = 0.5) -> None:
        self.rules = rules or RuleClassifier()
        self.model = model
        self.min_model_score = min_model_score

    def classify(self, subject: str, text: str) -> TypeGuess:
        by_rules = self.rules.classify(subject, text)
        if self.model is None:
            return by_rules
        doc_type, score = self.model.predict(f"{subject}\n{text}")
        if score >= self.min_model_score:
            return TypeGuess(doc_type, score, by_rules.matched, "model")
        return by_rules
