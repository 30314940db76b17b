"""Who an item is from or about: customers found in the store by the sender's address or number
and by what the content says (email, phone, account number, name with postcode or address).

Each customer gets a score in 0..1 combining independent signals (``1 - prod(1 - s)``) and the
list of signals that gave it, for the audit log.  Names and addresses are compared with
rapidfuzz, so OCR noise and "Mrs J. Doe" still match "Jane Doe".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz import utils as fuzz_utils

from classify.entities import Entities, normalise_phone, phone_variants
from classify.lookup import CaseLookup, CustomerView


@dataclass(frozen=True, slots=True)
class CustomerWeights:
    """How much each signal says that an item is from (or about) a customer."""

    declared_customer: float = 0.97  # a trusted system's metadata names the customer
    sender_email: float = 0.97
    sender_phone: float = 0.95
    content_email: float = 0.6
    content_phone: float = 0.6
    account_number: float = 0.85
    name_postcode: float = 0.9
    name_address: float = 0.85
    name_only: float = 0.2
    name_min_ratio: float = 85.0  # rapidfuzz token_set_ratio of names, 0..100
    address_min_ratio: float = 85.0  # rapidfuzz partial_ratio of the first address line within the text


@dataclass(slots=True)
class CustomerMatch:
    customer: CustomerView
    score: float = 0.0
    signals: list[str] = field(default_factory=list)
    from_sender: bool = False  # the sender's own address or number is this customer's

    def add(self, signal: str, weight: float) -> None:
        if signal in self.signals:
            return
        self.signals.append(signal)
        self.score = 1 - (1 - self.score) * (1 - weight)

    def evidence(self) -> dict[str, object]:
        return {"customer_id": self.customer.customer_id, "score": round(self.score, 3), "signals": self.signals}


def resolve_customers(
    *, sender_email: str | None, sender_phone: str | None, sender_name: str | None, text: str,
    entities: Entities, lookup: CaseLookup, weights: CustomerWeights | None = None, phone_region: str = "GB",
    declared_customer_id: str | None = None, account_numbers: Sequence[str] = (),
) -> list[CustomerMatch]:
    """Customers the item points at, best first (score, then CRM id).

    ``declared_customer_id``: the customer a trusted system's metadata names (counts as the
    sender's identity); ``account_numbers``: account numbers from metadata, counted like those in
    the content."""
    w = weights or CustomerWeights()
    matches: dict[str, CustomerMatch] = {}

    def get(c: CustomerView) -> CustomerMatch:
        return matches.setdefault(c.customer_id, CustomerMatch(c))

    if declared_customer_id and (declared := lookup.customer(declared_customer_id)) is not None:
        m = get(declared)
        m.from_sender = True
        m.add("declared_customer", w.declared_customer)
    for value in account_numbers:
        for variant in _account_variants(value):
            for c in lookup.find_customers(account_number=variant):
                get(c).add("account_number", w.account_number)

    if sender_email:
        for c in lookup.find_customers(email=sender_email):
            m = get(c)
            m.from_sender = True
            m.add("sender_email", w.sender_email)
    sender_e164 = normalise_phone(sender_phone, region=phone_region) if sender_phone else None
    if sender_e164:
        for c in _by_phone(lookup, sender_e164, phone_region):
            m = get(c)
            m.from_sender = True
            m.add("sender_phone", w.sender_phone)
    for e in entities.emails:
        if e.value != (sender_email or "").lower():
            for c in lookup.find_customers(email=e.value):
                get(c).add("content_email", w.content_email * e.confidence)
    for e in entities.phones:
        if e.value != sender_e164:
            for c in _by_phone(lookup, e.value, phone_region):
                get(c).add("content_phone", w.content_phone * min(1.0, e.confidence + 0.1))
    for e in entities.accounts:
        for variant in _account_variants(e.value):
            for c in lookup.find_customers(account_number=variant):
                get(c).add("account_number", w.account_number * min(1.0, e.confidence + 0.1))
    _name_signals(names_of(entities, sender_name), text, entities, lookup, w, matches)
    return sorted(matches.values(), key=lambda m: (-m.score, m.customer.customer_id))


def _by_phone(lookup: CaseLookup, e164: str, region: str) -> list[CustomerView]:
    seen: dict[str, CustomerView] = {}
    for variant in phone_variants(e164, region=region):
        for c in lookup.find_customers(phone=variant):
            seen.setdefault(c.customer_id, c)
    return list(seen.values())


def _account_variants(value: str) -> list[str]:
    compact = "".join(value.split())
    return list(dict.fromkeys([value, compact, value.replace(" ", "-")]))


def names_of(entities: Entities, sender_name: str | None) -> list[str]:
    """The names an item gives: those in its content, and the sender's display name of two words or more."""
    names = [n.value for n in entities.names]
    if sender_name and len(sender_name.split()) >= 2:
        names.append(sender_name)
    return names


def surnames(names: Iterable[str]) -> set[str]:
    """The surnames the customer look-up asks for (``find_customers(name=...)``), each once."""
    return {n.split()[-1] for n in names if len(n.split()) >= 2}


def _name_signals(names: Sequence[str], text: str, entities: Entities, lookup: CaseLookup, w: CustomerWeights,
                  matches: dict[str, CustomerMatch]) -> None:
    """Name plus postcode (exact) or plus address (fuzzy) of a customer found by postcode or surname."""
    if not names:
        return
    candidates: dict[str, CustomerView] = {}
    for p in entities.postcodes:
        for c in lookup.find_customers(postcode=p.value):
            candidates.setdefault(c.customer_id, c)
    for surname in surnames(names):
        for c in lookup.find_customers(name=surname):
            candidates.setdefault(c.customer_id, c)
    for m in matches.values():
        candidates.setdefault(m.customer.customer_id, m.customer)
    postcodes = {_compact(p.value) for p in entities.postcodes}
    for c in candidates.values():
        ratio = best_name_ratio(c.name, names)
        if ratio < w.name_min_ratio:
            continue
        match = matches.setdefault(c.customer_id, CustomerMatch(c))
        if c.postcode and _compact(c.postcode) in postcodes:
            match.add("name_postcode", w.name_postcode * ratio / 100)
        elif c.address and address_ratio(c.address, text) >= w.address_min_ratio:
            match.add("name_address", w.name_address * ratio / 100)
        else:
            match.add("name_only", w.name_only * ratio / 100)


def _compact(postcode: str) -> str:
    return "".join(postcode.split()).upper()


def best_name_ratio(customer_name: str, names: Iterable[str]) -> float:
    """0..100: how well the best of ``names`` matches the customer's name.  Surnames must agree
    closely; a first name may be an initial."""
    best = 0.0
    target = fuzz_utils.default_process(customer_name)
    if not target:
        return 0.0
    for name in names:
        cand = fuzz_utils.default_process(name)
        if not cand:
            continue
        if fuzz.ratio(target.split()[-1], cand.split()[-1]) < 80:
            continue  # surnames differ
        ratio = fuzz.token_set_ratio(target, cand)
        first_t, first_c = target.split()[0], cand.split()[0]
        if len(target.split()) > 1 and len(cand.split()) > 1 and first_t[0] == first_c[0] and (
                len(first_c) == 1 or len(first_t) == 1):
            ratio = max(ratio, 90.0)  # "J Doe" for "Jane Doe"
        best = max(best, ratio)
    return best


def address_ratio(address: str, text: str) -> float:
    """0..100: how well the address's first line appears somewhere in ``text`` (OCR-tolerant)."""
    first_line = address.replace("\n", ",").split(",")[0].strip()
    if len(first_line) < 5:
        return 0.0
    return float(fuzz.partial_ratio(first_line.lower(), text.lower()))
