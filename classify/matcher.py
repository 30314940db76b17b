"""The decision: attach to an existing case, open a new case, triage for a person, or noise.

Foundation rules, in order (each decision carries its evidence for the audit log):

1. bounces, auto-replies and delivery reports are noise;
2. a quoted case reference counts only if the sender is that case's customer; a reference
   quoted by anyone else goes to triage, never into that case (Zammad #5064's mistake);
3. a known sender with exactly one open case attaches there; with several, triage with the
   candidates; with none, a new case for that customer;
4. bulk/list mail goes to triage (a person decides), an item with no text at all too;
5. anything else is a new request from a new person: a new case without a customer.

Not yet here (the matching issue): content agreement (account number, name with postcode),
OCR-misread references checked against the check character, email threading, the trained
document-type model and configurable thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classify.doctype import RuleClassifier
from classify.entities import find_case_refs
from classify.lookup import CaseLookup, CaseView


@dataclass(frozen=True, slots=True)
class MatchInput:
    channel: str
    subject: str
    text: str
    sender_email: str | None = None
    sender_phone: str | None = None
    is_bounce: bool = False
    is_auto_reply: bool = False
    is_bulk: bool = False
    doc_type_hint: str | None = None


@dataclass(frozen=True, slots=True)
class MatchResult:
    outcome: str
    case_ref: str | None = None
    customer_id: str | None = None
    doc_type: str = "general_enquiry"
    case_type: str | None = None
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MatchConfig:
    own_ref_prefix: str = "CW"
    legacy_ref_pattern: str = ""


class Matcher:
    def __init__(self, config: MatchConfig, classifier: RuleClassifier | None = None) -> None:
        self.config = config
        self.classifier = classifier or RuleClassifier()

    def decide(self, item: MatchInput, lookup: CaseLookup) -> MatchResult:
        guess = self.classifier.classify(item.subject, item.text)
        doc_type = item.doc_type_hint or guess.doc_type
        evidence: dict[str, Any] = {
            "doc_type": {"method": "hint" if item.doc_type_hint else "rules", "type": doc_type,
                         "score": guess.score, "matched": list(guess.matched)},
        }

        def result(outcome: str, reason: str, **kw: Any) -> MatchResult:
            return MatchResult(outcome=outcome, doc_type=doc_type, reason=reason, evidence=evidence, **kw)

        if item.is_bounce or item.is_auto_reply:
            evidence["automatic"] = {"bounce": item.is_bounce, "auto_reply": item.is_auto_reply}
            return result("noise", "automatic mail (bounce or auto-reply): must not open or feed a case")

        sender_customers = self._sender_customers(item, lookup)
        sender_ids = {c.customer_id for c in sender_customers}
        evidence["sender"] = {"email": item.sender_email, "phone": item.sender_phone,
                              "customers": sorted(sender_ids)}

        refs = find_case_refs(f"{item.subject}\n{item.text}", own_prefix=self.config.own_ref_prefix,
                              legacy_pattern=self.config.legacy_ref_pattern)
        known: list[CaseView] = []
        for ent in refs:
            case = lookup.case_by_ref(ent.value)
            if case is not None:
                known.append(case)
        evidence["refs"] = [{"ref": e.value, "raw": e.raw, "confidence": e.confidence} for e in refs]
        evidence["refs_known"] = [c.ref for c in known]

        agreeing = [c for c in known if c.customer_id is not None and c.customer_id in sender_ids]
        if agreeing:
            case = agreeing[0]
            evidence["rule"] = "reference + sender is the case's customer"
            return result("attached", f"reference {case.ref} quoted by its customer",
                          case_ref=case.ref, customer_id=case.customer_id)
        if known:
            evidence["rule"] = "reference quoted by someone who is not the case's customer"
            return result("triage", "a case reference was quoted by someone who is not that case's customer",
                          candidates=[c.ref for c in known])

        if len(sender_ids) == 1:
            customer_id = next(iter(sender_ids))
            open_cases = list(lookup.open_cases(customer_id))
            evidence["open_cases"] = [c.ref for c in open_cases]
            if len(open_cases) == 1:
                evidence["rule"] = "known sender with exactly one open case"
                return result("attached", f"the sender's only open case is {open_cases[0].ref}",
                              case_ref=open_cases[0].ref, customer_id=customer_id)
            if len(open_cases) > 1:
                evidence["rule"] = "known sender with several open cases"
                return result("triage", "the sender has several open cases and the item names none",
                              customer_id=customer_id, candidates=[c.ref for c in open_cases])
            evidence["rule"] = "known sender without an open case"
            return result("new_case", "a new request from a known customer with no open case",
                          customer_id=customer_id, case_type=doc_type)
        if len(sender_ids) > 1:
            evidence["rule"] = "sender matches several customers"
            return result("triage", "the sender's address or number belongs to several customers")

        if item.is_bulk:
            evidence["rule"] = "bulk or list mail"
            return result("triage", "bulk or mailing-list mail from an unknown sender: a person decides")
        if not item.text.strip() and not item.subject.strip():
            evidence["rule"] = "no readable content"
            return result("triage", "nothing readable identifies a customer or a case")
        evidence["rule"] = "new person, no reference"
        return result("new_case", "a new request from a person not yet known", case_type=doc_type)

    @staticmethod
    def _sender_customers(item: MatchInput, lookup: CaseLookup) -> list[Any]:
        if not item.sender_email and not item.sender_phone:
            return []
        return list(lookup.find_customers(email=item.sender_email, phone=item.sender_phone))
