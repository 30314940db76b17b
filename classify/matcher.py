"""The decision: attach to an existing case, open a new case, triage for a person, or noise.

Rules, in order; each decision carries its evidence for the audit log (entities, customer
scores, the rule that fired, candidates):

1. bounces, auto-replies and delivery reports are noise, linked to the case of the message
   they answer when the store knows it;
2. a case reference (quoted, or a thread: In-Reply-To/References naming a filed message, or an
   SMS from the number our last SMS went to) counts only when the
   sender or the content agrees with that case's customer: the sender's address or number, or
   in the content an email, phone, account number, or name with postcode or address; failing
   what the entity finders saw, the case customer's own record is read against the text in any
   layout (``classify.agreement``: account number, postcode, surname with first name, initial or
   address, email, phone; OCR-tolerant).  When the
   sender is known as a different customer, only that customer's own agreement would do.  A
   reference nobody agrees with goes to triage, never into that case (Zammad #5064's mistake);
   OCR-misread references are repaired against the check character and must exist;
3. a customer identified without a reference (score >= ``identify_threshold``, ahead of the
   next by ``customer_margin``): exactly one open case of a fitting type -> attach; several ->
   triage, ranked; none -> a new case for that customer;
4. a weakly identified or ambiguous customer, nothing readable -> triage; bulk or list mail,
   or mail a filter on the way in judged spam (``X-Spam-Flag: YES`` and the like), from an
   unknown sender -> noise (a known customer's mail is never dropped for a spam verdict; the
   verdict stays in the evidence);
5. a new request from a new person: a new case, only when the item says who wrote and how to
   reach them (``classify.writer``: the sender, or a name with an email, phone or postcode);
   the writer goes with the decision, for the file stage to keep as a prospect customer.
   Nobody to answer (a README, a data export, a page without a writer) -> triage, saying why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from classify.agreement import record_agreement
from classify.customers import CustomerMatch, names_of, resolve_customers, surnames
from classify.doctype import DocTypeClassifier
from classify.entities import Entities, find_entities
from classify.lookup import CaseLookup, CaseView, MemoLookup
from classify.match_types import MatchConfig, MatchInput, MatchResult
from classify.writer import find_writer

__all__ = ["MatchConfig", "MatchInput", "MatchResult", "Matcher"]

_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|abwesenheitsnotiz"
    r"|undeliver(?:able|ed)|delivery (?:status notification|failure|has failed)|mail delivery (?:failed|system)"
    r"|returned mail|read receipt|read:|delivered:)", re.IGNORECASE)
# Bounce words in a subject: for email the extract stage already judged bounces by their structure
# (a customer may write "Delivery failure of my card"), so for email these words alone are not enough.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:able|ed)|delivery (?:status notification|failure|has failed)"
    r"|mail delivery (?:failed|system)|returned mail)", re.IGNORECASE)
_STRONG_SIGNALS = frozenset({"sender_email", "sender_phone", "content_email", "content_phone", "account_number",
                             "name_postcode", "name_address", "declared_customer"})
_OWN_SIGNALS = frozenset({"account_number", "name_postcode", "name_address"})


@dataclass(frozen=True, slots=True)
class _RefHit:
    case: CaseView
    how: str  # "ref", "thread" or "metadata"
    raw: str
    confidence: float


class Matcher:
    def __init__(self, config: MatchConfig | None = None, classifier: DocTypeClassifier | None = None) -> None:
        self.config = config or MatchConfig()
        self.classifier = classifier or DocTypeClassifier(min_model_score=self.config.doc_type_model_min)

    def prefetch(self, items: Sequence[MatchInput], lookup: MemoLookup) -> list[Entities | None]:
        """Ask a batch's look-ups together before deciding its items one by one: the case
        references, e-mail addresses and surnames the items carry are fetched in one query each when the
        store can (``MemoLookup.prefetch``) instead of a round trip per item.  Returns each item's
        entities (None for automatic mail, decided without them) to pass to ``decide``, so they
        are found once; the decisions are those ``decide`` makes without a prefetch."""
        found = [None if self._automatic(item) else self._entities(item) for item in items]
        refs = [item.meta_case_ref for item in items if item.meta_case_ref]
        emails = [item.sender_email for item in items if item.sender_email]
        names: list[str] = []
        for item, entities in zip(items, found, strict=True):
            if entities is not None:
                refs.extend(e.value for e in entities.case_refs if e.confidence >= self.config.min_ref_confidence)
                emails.extend(e.value for e in entities.emails)
                names.extend(surnames(names_of(entities, item.sender_name)))
        lookup.prefetch(case_refs=refs, emails=emails, names=names)
        return found

    @staticmethod
    def _automatic(item: MatchInput) -> bool:
        """Bounces, auto-replies, delivery reports: noise, decided without entities."""
        return item.is_bounce or item.is_auto_reply or (bool(_AUTOMATIC_SUBJECT.match(item.subject or ""))
                                                        and not (item.channel == "email"
                                                                 and _BOUNCE_SUBJECT.match(item.subject or "")))

    def _entities(self, item: MatchInput) -> Entities:
        return find_entities(f"{item.subject}\n{item.text}", self.config.entity_config())

    def decide(self, item: MatchInput, lookup: CaseLookup, found: Entities | None = None) -> MatchResult:
        """The outcome for ``item``; ``found``: its entities, as ``prefetch`` returned them, if it ran."""
        cfg = self.config
        guess = self.classifier.classify(item.subject, item.text)
        doc_type = item.doc_type_hint or guess.doc_type
        evidence: dict[str, Any] = {
            "doc_type": {"method": "hint" if item.doc_type_hint else guess.method, "type": doc_type,
                         "score": round(guess.score, 3), "matched": list(guess.matched)},
        }

        def result(outcome: str, reason: str, rule: str, **kw: Any) -> MatchResult:
            evidence["rule"] = rule
            return MatchResult(outcome=outcome, doc_type=doc_type, reason=reason, evidence=evidence, **kw)

        automatic_subject = bool(_AUTOMATIC_SUBJECT.match(item.subject or "")) and not (
            item.channel == "email" and _BOUNCE_SUBJECT.match(item.subject or ""))
        if item.is_bounce or item.is_auto_reply or automatic_subject:
            evidence["automatic"] = {"bounce": item.is_bounce, "auto_reply": item.is_auto_reply,
                                     "subject": automatic_subject}
            original = item.original_message_id or item.in_reply_to
            if original:
                linked = lookup.case_by_message_id(original)
                evidence["linked"] = {"message_id": original, "case_ref": linked.ref if linked else None}
            return result("noise", "automatic mail (bounce, auto-reply or delivery report): must not open or "
                                   "feed a case", "automatic mail")

        full_text = f"{item.subject}\n{item.text}"
        entities = found if found is not None else find_entities(full_text, cfg.entity_config())
        evidence["entities"] = entities.as_evidence()
        declared = item.meta_customer_id if item.trusted_metadata else None
        customers = resolve_customers(
            sender_email=item.sender_email, sender_phone=item.sender_phone, sender_name=item.sender_name,
            text=full_text, entities=entities, lookup=lookup, weights=cfg.weights, phone_region=cfg.phone_region,
            declared_customer_id=declared,
            account_numbers=[item.meta_account_number] if item.meta_account_number else [])
        evidence["sender"] = {"email": item.sender_email, "phone": item.sender_phone, "name": item.sender_name}
        if item.sender_field not in (None, "from"):
            evidence["sender"]["from_header"] = f"From unusable; sender taken from {item.sender_field.title()}"
        if item.spam_verdict:
            evidence["spam_verdict"] = item.spam_verdict
        metadata = {k: v for k, v in (("case_ref", item.meta_case_ref), ("customer_id", item.meta_customer_id),
                                      ("account_number", item.meta_account_number)) if v}
        if metadata:
            evidence["metadata"] = {**metadata, "trusted": item.trusted_metadata}
            if item.meta_customer_id and not item.trusted_metadata:
                evidence["metadata"]["ignored"] = "customer_id from a channel whose sender writes it"
        evidence["customers"] = [m.evidence() for m in customers[:10]]

        hits = self._reference_hits(item, entities, lookup)
        evidence["refs_known"] = [{"ref": h.case.ref, "via": h.how, "raw": h.raw, "confidence": h.confidence}
                                  for h in hits]
        if hits:
            decided = self._by_reference(hits, customers, item, lookup, evidence, result)
            if decided is not None:
                return decided

        return self._by_customer(customers, doc_type, item, entities, lookup, evidence, result)

    # -- references and threads -------------------------------------------------------------

    def _reference_hits(self, item: MatchInput, entities: Entities, lookup: CaseLookup) -> list[_RefHit]:
        hits: dict[str, _RefHit] = {}
        if item.meta_case_ref and (case := lookup.case_by_ref(item.meta_case_ref)) is not None:
            hits[case.ref] = _RefHit(case, "metadata", item.meta_case_ref, 1.0)
        for mid in [m for m in (item.in_reply_to, *reversed(item.references)) if m]:
            case = lookup.case_by_message_id(mid)
            if case is not None and case.ref not in hits:
                hits[case.ref] = _RefHit(case, "thread", mid, 0.95)
        if item.channel == "sms" and item.sender_phone:  # an SMS answers the last one we sent to that number
            case = lookup.case_of_last_sms_to(item.sender_phone)
            if case is not None and case.ref not in hits:
                hits[case.ref] = _RefHit(case, "thread", item.sender_phone, 0.9)
        for ent in entities.case_refs:
            if ent.confidence < self.config.min_ref_confidence:
                continue
            case = lookup.case_by_ref(ent.value)
            if case is None:
                continue
            current = hits.get(case.ref)
            if current is not None and current.how == "thread":
                # a reply quoting the reference of the case its thread leads to (our replies carry it in
                # the subject): the thread is the evidence, as sure as the reference
                hits[case.ref] = _RefHit(case, "thread", current.raw, max(current.confidence, ent.confidence))
            elif current is None or ent.confidence > current.confidence:
                hits[case.ref] = _RefHit(case, "ref", ent.raw, ent.confidence)
        return sorted(hits.values(), key=lambda h: -h.confidence)

    def _agrees(self, case: CaseView, customers: list[CustomerMatch], item: MatchInput,
                lookup: CaseLookup, record_checks: dict[str, list[str]]) -> list[str]:
        """The signals by which the sender or content agrees with the case's customer ([] if none).

        First what the entity finders found; failing that, the case customer's own record read
        against the text (``classify.agreement``: any layout, OCR-tolerant), noted in
        ``record_checks``."""
        if case.customer_id is None:  # a case opened for a person not yet known: same sender?
            senders = set(lookup.case_senders(case.ref))
            mine = {s.lower() for s in (item.sender_email, item.sender_phone) if s}
            return ["earlier_sender"] if senders & mine else []
        sender_ids = {m.customer.customer_id for m in customers if m.from_sender}
        someone_else = bool(sender_ids) and case.customer_id not in sender_ids
        for m in customers:
            if m.customer.customer_id != case.customer_id:
                continue
            # the sender is someone else we know: only the case customer's own identifiers count
            found = [s for s in m.signals if s in (_OWN_SIGNALS if someone_else else _STRONG_SIGNALS)]
            if found:
                return found
        record = lookup.customer(case.customer_id)
        if record is None:
            return []
        checked = record_agreement(record, f"{item.subject}\n{item.text}", phone_region=self.config.phone_region,
                                   own_only=someone_else)
        record_checks[case.ref] = checked
        return checked

    def _by_reference(self, hits: list[_RefHit], customers: list[CustomerMatch], item: MatchInput,
                      lookup: CaseLookup, evidence: dict[str, Any], result: Any) -> MatchResult | None:
        agreeing: list[tuple[_RefHit, list[str]]] = []
        record_checks: dict[str, list[str]] = {}
        for hit in hits:
            signals = self._agrees(hit.case, customers, item, lookup, record_checks)
            if signals:
                agreeing.append((hit, signals))
        evidence["agreement"] = {h.case.ref: s for h, s in agreeing}
        if record_checks:
            evidence["record_check"] = record_checks  # the case customer's record read against the text
        if not agreeing:
            exact = [h for h in hits if h.confidence >= 0.9]
            if not exact and all(h.how == "ref" for h in hits):
                return None  # only repaired guesses matched, and nobody agrees: they were just guesses
            return result("triage", "a case reference was quoted (or a thread continued) by someone who does "
                                    "not agree with that case's customer", "reference without agreement",
                          candidates=[h.case.ref for h in hits][: self.config.max_triage_candidates])
        best_conf = agreeing[0][0].confidence
        top = [(h, s) for h, s in agreeing if h.confidence >= best_conf - 1e-9]
        if len({h.case.ref for h, _ in top}) > 1:
            return result("triage", "several referenced cases agree equally well", "ambiguous references",
                          candidates=[h.case.ref for h, _ in agreeing][: self.config.max_triage_candidates])
        hit, signals = top[0]
        if hit.case.status == "closed" and not self.config.attach_to_closed:
            return result("triage", f"the referenced case {hit.case.ref} is closed", "reference to a closed case",
                          customer_id=hit.case.customer_id, candidates=[hit.case.ref])
        via = {"thread": "thread (In-Reply-To/References)", "metadata": f"metadata case_ref {hit.raw!r}"}.get(
            hit.how, f"reference {hit.raw!r}")
        how = " (the case customer's record read against the text)" if hit.case.ref in record_checks else ""
        return result("attached", f"{via} of case {hit.case.ref}, agreed by {', '.join(signals)}{how}",
                      {"ref": "reference + agreement", "metadata": "metadata reference + agreement"}.get(
                          hit.how, "thread + agreement"),
                      case_ref=hit.case.ref, customer_id=hit.case.customer_id)

    # -- customers without a reference ------------------------------------------------------

    def _by_customer(self, customers: list[CustomerMatch], doc_type: str, item: MatchInput, entities: Entities,
                     lookup: CaseLookup, evidence: dict[str, Any], result: Any) -> MatchResult:
        cfg = self.config
        ranked = [m for m in customers if m.score >= cfg.candidate_threshold]
        top = ranked[0] if ranked else None
        second = ranked[1].score if len(ranked) > 1 else 0.0
        if top is not None and top.score >= cfg.identify_threshold and top.score - second >= cfg.customer_margin:
            customer_id = top.customer.customer_id
            open_cases = list(lookup.open_cases(customer_id))
            fitting = [c for c in open_cases if self._fits(c, doc_type)]
            evidence["open_cases"] = [{"ref": c.ref, "type": c.case_type, "fits": c in fitting} for c in open_cases]
            if len(fitting) == 1:
                return result("attached", f"the customer's only open case of a fitting type is {fitting[0].ref}",
                              "known customer, one fitting open case", case_ref=fitting[0].ref,
                              customer_id=customer_id)
            if len(fitting) > 1:
                return result("triage", "the customer has several fitting open cases and the item names none",
                              "known customer, several fitting open cases", customer_id=customer_id,
                              candidates=[c.ref for c in fitting][: cfg.max_triage_candidates])
            return result("new_case", "a new request from a known customer with no open case of this type",
                          "known customer, no fitting open case", customer_id=customer_id,
                          case_type=self._case_type(doc_type))
        if ranked:
            candidates: list[str] = []
            for m in ranked[:3]:
                candidates.extend(c.ref for c in lookup.open_cases(m.customer.customer_id))
            return result("triage", "the item may be from a known customer, but not surely enough",
                          "uncertain customer", customer_id=top.customer.customer_id if top else None,
                          candidates=list(dict.fromkeys(candidates))[: cfg.max_triage_candidates])
        if item.is_bulk:
            return result("noise", "bulk or mailing-list mail (List-Id, List-Unsubscribe or Precedence) from a "
                                   "sender we do not know: nobody to answer, so no case", "bulk or list mail")
        if item.spam_verdict:
            return result("noise", f"spam by the receiving mail filter's verdict ({item.spam_verdict}) from a "
                                   "sender we do not know: no case", "spam verdict")
        if not item.text.strip() and not item.subject.strip():
            return result("triage", "nothing readable identifies a customer or a case", "no readable content")
        writer = find_writer(sender_email=item.sender_email, sender_phone=item.sender_phone,
                             sender_name=item.sender_name, text=f"{item.subject}\n{item.text}", entities=entities,
                             records=item.records, phone_region=cfg.phone_region)
        evidence["writer"] = writer.evidence() if writer else None
        if writer is None:
            if item.records > 1:
                return result("triage", f"a data export of {item.records} records names nobody to answer: a person "
                                        "files it, or the integration that sends it names its customer "
                                        "(metadata customer_id)", "data export, no one to answer")
            return result("triage", "nobody to answer: no sender address or number, and no writer's name with an "
                                    "email, phone or postal address; a person decides where it belongs",
                          "no one to answer")
        who = writer.name or writer.email or writer.phone
        return result("new_case", f"a new request from a person not yet known ({who}): a prospect customer is kept "
                                  "for them", "new person, no reference", case_type=self._case_type(doc_type),
                      writer=writer)

    def _fits(self, case: CaseView, doc_type: str) -> bool:
        return doc_type in self.config.generic_types or case.case_type == doc_type

    def _case_type(self, doc_type: str) -> str:
        return doc_type or self.config.new_case_type
