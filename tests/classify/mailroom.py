"""A generated mailroom day, seeded into a real case store, run through the real pipeline pieces
(``ingest.extract.extract`` -> ``ingest.pipeline.match_input`` -> ``Matcher`` with ``StoreLookup``).

The day (``generate_day``) holds: emails quoting the reference in the subject; the reference
only in the body from a new address with name and account number; replies threaded by
In-Reply-To to a message the store holds; known customers writing without a reference to
their one open case; known senders without a case making a new request; strangers quoting
someone else's reference; new people's complaints; out-of-office replies; scanned letters at
200 dpi with noise and skew (clean reference, reference with one or two OCR misreads, only
account number with name and address, new claims from new people); born-digital PDF forms.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from casestore import cases
from casestore.customers import upsert_customer
from casestore.items import NewDocument, NewItem, file_item
from casestore.lookup import StoreLookup
from classify.matcher import Matcher, MatchInput, MatchResult
from ingest.blobs import FileBlobStore
from ingest.extract import ExtractLimits, extract
from ingest.messages import ExtractedItem, item_id_for
from ingest.pipeline import match_input

from .mailroom_render import email_bytes, pdf_form, scan_png

FIRST = ["Jane", "John", "Priya", "Tom", "Aisha", "Liam", "Olivia", "Noah", "Emma", "Oliver", "Sofia", "Jack",
         "Grace", "Harry", "Chloe", "George", "Mia", "Oscar", "Ella", "Arthur", "Zara", "Leo", "Ruby", "Ethan"]
LAST = ["Whitaker", "Okafor", "Patel", "Lindqvist", "Hargreaves", "Brennan", "Moreau", "Fitzgerald", "Nakamura",
        "Ellison", "Castellano", "Abernethy", "Kowalczyk", "Thornbury", "Delacroix", "Oyelaran", "Sinclair",
        "Haverford", "Montague", "Pemberton", "Quinlan", "Rutherford", "Stanhope", "Vasquez", "Wexford",
        "Ashcombe", "Blackwood", "Carrington", "Drummond", "Everly"]
NEW_LAST = ["Zimmerman", "Yardley", "Ingleby", "Umbridge", "Gallagher", "Ferreira", "Kaminski", "Lovell",
            "Nightingale", "Osei", "Prendergast", "Radcliffe"]
STREETS = ["High Street", "Church Lane", "Mill Road", "Station Road", "Park Avenue", "Victoria Street",
           "Green Lane", "Manor Close", "Kings Road", "Queens Drive"]
TOWNS = [("Leeds", "LS"), ("York", "YO"), ("Bristol", "BS"), ("Cardiff", "CF"), ("Norwich", "NR"),
         ("Exeter", "EX"), ("Bath", "BA"), ("Derby", "DE")]
MISREAD = {"0": "O", "1": "l", "5": "S", "8": "B", "2": "Z"}
DIGIT_MISREAD = {"8": "3", "1": "7", "6": "5", "0": "8", "3": "8", "9": "4", "7": "1", "5": "6", "2": "7", "4": "9"}


@dataclass
class Person:
    customer_id: str
    first: str
    last: str
    email: str
    phone: str
    street: str
    town: str
    postcode: str
    account: str
    open_refs: list[str] = field(default_factory=list)
    case_types: list[str] = field(default_factory=list)
    thread_ids: dict[str, str] = field(default_factory=dict)  # ref -> Message-ID of a filed item

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def address_lines(self) -> list[str]:
        return [self.name, self.street, f"{self.town} {self.postcode}"]


@dataclass
class Expected:
    outcome: str
    case_ref: str | None = None
    customer_id: str | None = None


@dataclass
class MailItem:
    name: str
    kind: str
    channel: str
    data: bytes
    filename: str
    content_type: str
    expected: Expected
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    item: MailItem
    result: MatchResult
    seconds: float
    case_customer: str | None  # the customer of the case it was attached to


def make_people(rng: random.Random, n: int) -> list[Person]:
    people: list[Person] = []
    used: set[tuple[str, str]] = set()
    for i in range(n):
        while True:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            if (first, last) not in used and sum(p.last == last for p in people) < 5:
                used.add((first, last))
                break
        town, area = rng.choice(TOWNS)
        postcode = f"{area}{rng.randint(1, 19)} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}" \
                   f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        people.append(Person(
            customer_id=f"C-{1000 + i}", first=first, last=last,
            email=f"{first.lower()}.{last.lower()}{i}@mail.example",
            phone=f"07911 {rng.randint(100000, 999999)}", street=f"{rng.randint(1, 200)} {rng.choice(STREETS)}",
            town=town, postcode=postcode, account=f"ACC-{rng.randint(100000, 999999)}",
        ))
    return people


def seed_store(session: Session, people: Sequence[Person], rng: random.Random) -> None:
    """Customers from the "CRM", their cases (legacy and own references), and earlier emails the
    store already filed (for threading).  Roughly: a third with one open case, a sixth with two,
    the rest none (some with a closed one)."""
    for i, p in enumerate(people):
        upsert_customer(session, customer_id=p.customer_id, name=p.name, email=p.email, phone=p.phone,
                        address=f"{p.street}, {p.town}", postcode=p.postcode, account_number=p.account)
        n_open = 1 if i % 6 in (0, 1) else 2 if i % 6 == 2 else 0
        for k in range(n_open):
            case_type = ["complaint", "claim", "arrears"][(i + k) % 3]
            if (i + k) % 4 == 0:
                ref = f"CM-2025-{100000 + i * 10 + k:06d}"
                cases.upsert_case(session, ref=ref, customer_id=p.customer_id, case_type=case_type, status="open",
                                  subject=f"{case_type} (legacy)")
            else:
                ref = cases.open_case(session, customer_id=p.customer_id, case_type=case_type,
                                      subject=f"{case_type} opened", actor="seed", reason="seed").ref
            p.open_refs.append(ref)
            p.case_types.append(case_type)
            mid = f"<seed-{i}-{k}@mail.example>"
            file_item(session, item=NewItem(
                item_id=item_id_for(f"seed:{mid}"), idempotency_key=f"seed:{mid}", channel="email",
                received_at=datetime(2026, 2, 1, tzinfo=UTC), source="seed", filename=None, blob_sha256=None,
                content_type="message/rfc822", size=0, metadata={"message_id": mid}, sender=p.email,
                subject=f"About {ref}"),
                documents=[NewDocument(part_index=0, kind="body", title="body", filename=None,
                                       content_type="text/plain", blob_sha256=None, text=f"first letter about {ref}")],
                outcome="attached", case_ref=ref, new_case=None, doc_type=case_type, decision={"reason": "seed"},
                actor="seed")
            p.thread_ids[ref] = mid
        if n_open == 0 and i % 5 == 0:
            cases.upsert_case(session, ref=f"CM-2024-{200000 + i:06d}", customer_id=p.customer_id,
                              case_type="claim", status="closed")


def _misread(ref: str, rng: random.Random, n: int) -> str:
    prefix, year, number, check = ref.split("-")
    chars = list(year + number)
    positions = [i for i, c in enumerate(chars) if c in MISREAD]
    rng.shuffle(positions)
    changed = 0
    for pos in positions[:n]:
        chars[pos] = MISREAD[chars[pos]]
        changed += 1
    if changed < n:  # a digit read as another digit: only the check character can catch it
        pos = rng.randrange(4, 10)
        chars[pos] = DIGIT_MISREAD[chars[pos]]
    digits = "".join(chars)
    return f"{prefix}-{digits[:4]}-{digits[4:]}-{check}"


REQUESTS = {
    "complaint": "I want to make a formal complaint about the way my call was handled. It was unacceptable.",
    "claim": "I would like to make a claim for the water damage to my kitchen after a burst pipe.",
    "cancellation": "Please cancel my policy from the end of this month.",
    "change_of_details": "I have moved house, please update my address on your records.",
    "application": "I would like to apply for a new account with you.",
}
FOLLOW_UPS = ["Is there any news on my case? I am still waiting to hear back.",
              "Please find my reply below. I have now sent the photos you asked for.",
              "Thank you for your letter. Could you tell me when to expect a decision?"]


def generate_day(people: Sequence[Person], rng: random.Random, *, scans: int = 24, scale: int = 1) -> list[MailItem]:
    items: list[MailItem] = []
    with_one = [p for p in people if len(p.open_refs) == 1]
    with_two = [p for p in people if len(p.open_refs) == 2]
    with_any = with_one + with_two
    without = [p for p in people if not p.open_refs]

    def add(kind: str, channel: str, data: bytes, filename: str, ctype: str, expected: Expected) -> None:
        items.append(MailItem(f"{kind}-{len(items):03d}", kind, channel, data, filename, ctype, expected))

    def mail(kind: str, expected: Expected, **kw: Any) -> None:
        data, _ = email_bytes(**kw)
        add(kind, "email", data, f"{kind}.eml", "message/rfc822", expected)

    for _ in range(30 * scale):  # reference in the subject, from the customer's own address
        p = rng.choice(with_any)
        ref = rng.choice(p.open_refs)
        mail("ref-subject", Expected("attached", ref, p.customer_id), sender=f"{p.name} <{p.email}>",
             subject=f"Re: {ref} {rng.choice(['update', 'my case', 'documents'])}",
             body=f"Hello,\n\n{rng.choice(FOLLOW_UPS)}\n\nKind regards,\n{p.first}")
    for _ in range(15 * scale):  # reference only in the body, from a new address, with name and account
        p = rng.choice(with_any)
        ref = rng.choice(p.open_refs)
        mail("ref-body-new-address", Expected("attached", ref, p.customer_id),
             sender=f"{p.first.lower()}{rng.randint(1, 99)}@newmail.example", subject="My case",
             body=f"Hello,\n\nI am writing from my work address about case {ref}. {rng.choice(FOLLOW_UPS)}\n\n"
                  f"Name: {p.name}\nAccount number: {p.account}\n\nThanks,\n{p.name}")
    for _ in range(10 * scale):  # a reply threaded to a message the store holds, no reference
        p = rng.choice(with_two)
        ref = rng.choice(p.open_refs)
        mail("thread-reply", Expected("attached", ref, p.customer_id), sender=f"{p.name} <{p.email}>",
             subject="Re: your letter", body=f"{rng.choice(FOLLOW_UPS)}\n\nRegards,\n{p.name}",
             in_reply_to=p.thread_ids[ref])
    for _ in range(10 * scale):  # a known customer writes to their one open case without the reference
        p = rng.choice(with_one)
        mail("known-one-case", Expected("attached", p.open_refs[0], p.customer_id), sender=p.email,
             subject="Any update?", body=f"{rng.choice(FOLLOW_UPS)}\n\n{p.first}")
    for _ in range(12 * scale):  # a known sender without a case makes a new request
        p = rng.choice(without)
        kind = rng.choice(list(REQUESTS))
        mail("known-new-request", Expected("new_case", None, p.customer_id), sender=f"{p.name} <{p.email}>",
             subject=kind.replace("_", " ").capitalize(), body=f"Dear Sir or Madam,\n\n{REQUESTS[kind]}\n\n"
                                                                f"Yours sincerely,\n{p.name}")
    for _ in range(10 * scale):  # a stranger quoting someone else's reference
        victim = rng.choice(with_any)
        ref = rng.choice(victim.open_refs)
        mail("stranger-quotes-ref", Expected("triage"), sender=f"someone{rng.randint(1, 999)}@elsewhere.example",
             subject=f"Case {ref}", body=f"Hello, I am enquiring about case {ref} for my neighbour {victim.first}. "
                                         "Please send me the documents.\n\nThanks")
    for i in range(4 * scale):  # a known customer quoting someone else's reference
        victim, sender = rng.choice(with_any), rng.choice(without)
        ref = rng.choice(victim.open_refs)
        mail("customer-quotes-other-ref", Expected("triage"), sender=sender.email, subject=f"Re: {ref}",
             body=f"What is happening with {ref}?\n\n{sender.name} ({i})")
    for i in range(12 * scale):  # a new person's complaint
        first, last = rng.choice(FIRST), rng.choice(NEW_LAST)
        mail("new-person-complaint", Expected("new_case"), sender=f"{first} {last} <{first.lower()}{i}@web.example>",
             subject="Complaint about your service", body=f"Dear Sir or Madam,\n\n{REQUESTS['complaint']}\n\n"
                                                          f"Yours faithfully,\n{first} {last}")
    for _ in range(8 * scale):  # out-of-office replies
        p = rng.choice(people)
        mail("out-of-office", Expected("noise"), sender=p.email, auto_reply=True,
             subject=f"Automatic reply: {rng.choice(p.open_refs) if p.open_refs else 'Your letter'}",
             body="I am out of the office until Monday with limited access to email.")
    for _ in range(6 * scale):  # born-digital PDF forms
        if rng.random() < 0.5:
            p = rng.choice(without)
            lines = ["Change of details form", f"Full name: {p.name}", f"Account number: {p.account}",
                     f"Postcode: {p.postcode}", "New address: 4 Orchard Way", "I have moved house, please update."]
            expected = Expected("new_case", None, p.customer_id)
        else:
            p = rng.choice(with_any)
            ref = rng.choice(p.open_refs)
            lines = ["Claim form - supporting information", f"Case reference: {ref}", f"Name: {p.name}",
                     f"Policy number: {p.account}", "Description: receipts for the repairs attached."]
            expected = Expected("attached", ref, p.customer_id)
        add("pdf-form", "file", pdf_form(lines), "form.pdf", "application/pdf", expected)
    for k in range(scans):  # scanned letters
        variant = k % 5
        if variant == 4:  # a new person's claim by letter
            first, last = rng.choice(FIRST), rng.choice(NEW_LAST)
            lines = [f"{first} {last}", f"{rng.randint(1, 90)} {rng.choice(STREETS)}", "Hull HU5 3QP", "",
                     "Dear Sir or Madam,", "", REQUESTS["claim"][:60], REQUESTS["claim"][60:], "",
                     "Yours faithfully,", f"{first} {last}"]
            add("scan-new-claim", "scan", scan_png(lines, rng), "letter.png", "image/png", Expected("new_case"))
            continue
        if variant == 3:  # account number, name and address only
            p = rng.choice(with_one)
            lines = [*p.address_lines(), "", "Dear Sir or Madam,", "",
                     f"Account number: {p.account}", "", "I am writing about my ongoing case.",
                     "Please let me know what happens next.", "", "Yours sincerely,", p.name]
            add("scan-account-only", "scan", scan_png(lines, rng), "letter.png", "image/png",
                Expected("attached", p.open_refs[0], p.customer_id))
            continue
        p = rng.choice(with_any)
        ref = rng.choice(p.open_refs)
        shown = ref if variant == 0 or ref.startswith("CM-") else _misread(ref, rng, variant)
        lines = [*p.address_lines(), "", "Dear Sir or Madam,", "", f"Your reference: {shown}", "",
                 "I enclose the documents you asked for.", "Please let me know if you need more.", "",
                 "Yours sincerely,", p.name]
        kind = "scan-clean-ref" if shown == ref else f"scan-misread-{variant}"
        add(kind, "scan", scan_png(lines, rng), "letter.png", "image/png", Expected("attached", ref, p.customer_id))
    return items


def extract_item(item: MailItem, blob_dir: Path) -> ExtractedItem:
    """Run the real extractor on the item's bytes and wrap it as the pipeline would."""
    blobs = FileBlobStore(blob_dir)
    ref = blobs.put(item.data)
    result = extract(item.data, filename=item.filename, content_type=item.content_type, blobs=blobs,
                     limits=ExtractLimits())
    key = f"{item.channel}:{item.name}"
    return ExtractedItem(item_id=item_id_for(key), channel=item.channel,
                         received_at=datetime(2026, 3, 2, tzinfo=UTC), idempotency_key=key,
                         blob_sha256=ref.sha256, size=len(item.data), filename=item.filename,
                         content_type=item.content_type, metadata=item.metadata, parts=result.parts,
                         email=result.email, warnings=result.warnings)


def _extract_job(args: tuple[MailItem, Path]) -> ExtractedItem:
    return extract_item(*args)


def full_match_input(extracted: ExtractedItem) -> MatchInput:
    """``ingest.pipeline.match_input`` plus the fields the matcher learned in issue 4."""
    base = match_input(extracted)
    email = extracted.email
    if email is None:
        return base
    return dataclasses.replace(
        base, sender_name=email.from_name, message_id=email.message_id, in_reply_to=email.in_reply_to,
        references=tuple(email.references), original_message_id=email.original_message_id)


def run_day(items: Sequence[MailItem], sessions: sessionmaker[Session], matcher: Matcher, blob_dir: Path,
            *, workers: int = 2) -> list[Outcome]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        extracted = list(pool.map(_extract_job, [(i, blob_dir) for i in items]))
    outcomes: list[Outcome] = []
    with sessions() as session:
        lookup = StoreLookup(session)
        for item, ext in zip(items, extracted, strict=True):
            start = time.perf_counter()
            result = matcher.decide(full_match_input(ext), lookup)
            took = time.perf_counter() - start
            owner = None
            if result.outcome == "attached" and result.case_ref:
                case = lookup.case_by_ref(result.case_ref)
                owner = case.customer_id if case else None
            outcomes.append(Outcome(item, result, took, owner))
    return outcomes


def rates(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    attached = [o for o in outcomes if o.result.outcome == "attached"]
    should = [o for o in outcomes if o.item.expected.outcome == "attached"]
    right = [o for o in attached if o.result.case_ref == o.item.expected.case_ref]
    wrong_customer = [o for o in attached if o.case_customer != o.item.expected.customer_id]
    others = [o for o in outcomes if o.item.expected.outcome != "attached"]
    others_right = [o for o in others if o.result.outcome == o.item.expected.outcome and (
        o.result.outcome != "new_case" or o.result.customer_id == o.item.expected.customer_id)]
    times = sorted(o.seconds for o in outcomes)
    return {
        "items": len(outcomes),
        "by_kind": dict(Counter(o.item.kind for o in outcomes)),
        "attach_precision": len(right) / len(attached) if attached else 1.0,
        "attach_recall": len(right) / len(should) if should else 1.0,
        "filed_in_other_customers_case": len(wrong_customer),
        "other_outcomes_right": len(others_right) / len(others) if others else 1.0,
        "match_ms_median": 1000 * times[len(times) // 2] if times else 0.0,
        "match_ms_p95": 1000 * times[int(len(times) * 0.95)] if times else 0.0,
        "wrong": [{"name": o.item.name, "expected": dataclasses.asdict(o.item.expected),
                   "got": {"outcome": o.result.outcome, "case_ref": o.result.case_ref,
                           "customer_id": o.result.customer_id, "reason": o.result.reason}}
                  for o in outcomes
                  if (o.result.outcome, o.result.case_ref if o.result.outcome == "attached" else None)
                  != (o.item.expected.outcome, o.item.expected.case_ref)
                  or (o.result.outcome == "new_case" and o.result.customer_id != o.item.expected.customer_id)],
    }
