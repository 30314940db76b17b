"""Forms and letters in layouts casework was not designed for, through `casework ingest` (issue 11.1).

Independent of the project's own generator (``tests/classify/forms.py``, fpdf2, the mailroom's
name lists): people come from Faker (en_GB), documents are HTML printed to PDF by Chromium (the
Debian browser, through Playwright), and one in five is an email whose HTML body is the same
document (HTML only, as web-form mailers send it) from an address the CRM does not know.  The layouts:

* ``grid``: a two-column label/value table (label | value | label | value), as a web form prints;
* ``label_after``: values first, their label after them ("22142500 (account number)");
* ``label_above``: "Name:" on one line, the value on the next;
* ``caps``: labels and values in capitals ("POLICYHOLDER: GEORGE GREEN");
* ``ocr_noise``: label and value, with OCR-ish swaps in the values (0/O, 1/l, 5/S, 8/B);
* ``split``: values broken over lines in narrow cells (an account number, a name, a postcode);
* ``address_block``: a letter whose only details are the customer's address block.

Every positive quotes one of the customer's own cases beside one to three of that customer's own
details; the negatives (one in four) quote a real case with somebody else's details (a new
person, another known customer, the case customer's first name with another surname, or near
misses: the case customer's surname under another first name beside their account and phone
numbers with one digit changed).  The
store is filled the way a new user does it: ``casework import customers`` and ``casework import
cases`` from CSV files, then ``casework ingest DIR --json``.  Prints one JSON object: attach
precision and recall overall and per layout, what the negatives became, and the seconds.

    python -m benchmarks.unseen_forms [--seed N] [--customers N] [--items N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from faker import Faker

LAYOUTS = ("grid", "label_after", "label_above", "caps", "ocr_noise", "split", "address_block")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Customer:
    customer_id: str
    name: str
    email: str
    phone: str
    street: str
    town: str
    postcode: str
    account: str
    refs: list[str] = field(default_factory=list)

    @property
    def first(self) -> str:
        return self.name.split()[0]

    @property
    def last(self) -> str:
        return self.name.split()[-1]


@dataclass
class Doc:
    name: str
    layout: str
    ref: str
    expected_ref: str | None  # None: must not be attached anywhere
    html: str
    kind: str = "pdf"  # pdf | email
    details: tuple[str, ...] = ()


def _plain_name(fake: Faker) -> str:
    """First and last name only (Faker adds titles and suffixes to some)."""
    return f"{fake.first_name()} {fake.last_name()}"


def make_customers(fake: Faker, rng: random.Random, n: int) -> list[Customer]:
    out = []
    for i in range(n):
        name = _plain_name(fake)
        account = rng.choice([f"{rng.randint(10_000_000, 99_999_999)}", f"AC{rng.randint(100_000, 999_999)}",
                              f"{rng.randint(1000, 9999)}-{rng.randint(100_000, 999_999)}"])
        out.append(Customer(
            customer_id=f"F{i:05d}", name=name, email=f"{name.lower().replace(' ', '.')}{i}@{fake.free_email_domain()}",
            phone=f"07{rng.randint(100, 999)} {rng.randint(100_000, 999_999)}", street=fake.street_address(),
            town=fake.city(), postcode=fake.postcode(), account=account,
        ))
        for k in range(rng.randint(1, 2)):
            out[-1].refs.append(f"CM-2024-{(300_000 + i * 10 + k):06d}")
    return out


# -- what a document says --------------------------------------------------------------------

DETAIL_KINDS = ("account", "name_postcode", "name_address", "email", "phone", "full_name")


def details_of(c: Customer, kinds: list[str]) -> list[tuple[str, str]]:
    """(label key, value) pairs for these kinds of the customer's own details."""
    pairs: list[tuple[str, str]] = []
    if {"name_postcode", "name_address", "full_name"} & set(kinds):
        pairs.append(("name", c.name))
    if "name_address" in kinds:
        pairs.append(("address", c.street))
    if "name_postcode" in kinds:
        pairs.append(("postcode", c.postcode))
    if "account" in kinds:
        pairs.append(("account", c.account))
    if "email" in kinds:
        pairs.append(("email", c.email))
    if "phone" in kinds:
        pairs.append(("phone", c.phone))
    return pairs


LABELS = {
    "ref": ["Claim reference", "Case no.", "File ref", "Reference number"],
    "name": ["Full name", "Policyholder", "Applicant", "Account holder"],
    "address": ["Street address", "Correspondence address", "Home address"],
    "postcode": ["Postal code", "Post Code", "Postcode / ZIP"],
    "account": ["Membership no", "Customer account", "Billing account", "Contract number"],
    "email": ["E-mail", "Email address", "Contact e-mail"],
    "phone": ["Contact number", "Telephone", "Phone (day)"],
}
BODIES = ["Please find my completed form attached for your records.",
          "I enclose the requested statement and receipts.",
          "I am writing to follow up on the matter below.",
          "Further to our telephone conversation, here are the details."]

_OCR_SWAPS = {"0": "O", "O": "0", "1": "l", "l": "1", "5": "S", "8": "B", "o": "0"}


def ocr_noise(value: str, rng: random.Random) -> str:
    """One or two OCR-ish look-alike swaps (0/O, 1/l, 5/S, 8/B) in a value."""
    spots = [i for i, ch in enumerate(value) if ch in _OCR_SWAPS]
    chars = list(value)
    for i in rng.sample(spots, k=min(len(spots), rng.randint(1, 2))):
        chars[i] = _OCR_SWAPS[chars[i]]
    return "".join(chars)


def _e(value: str) -> str:
    return html.escape(value)


def _page(body: str, title: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>"
            "body{font-family:'DejaVu Sans',sans-serif;font-size:11pt;margin:18mm}"
            "td,th{border:1px solid #999;padding:4px 8px;vertical-align:top}table{border-collapse:collapse}"
            ".narrow td{width:28mm}.caps{text-transform:none}</style></head><body>"
            f"{body}</body></html>")


def _label(key: str, rng: random.Random) -> str:
    return rng.choice(LABELS[key])


def render(layout: str, ref: str, pairs: list[tuple[str, str]], rng: random.Random, c: Customer | None,
           fake: Faker) -> str:
    body = rng.choice(BODIES)
    heading = rng.choice(["Customer information form", "Change of circumstances", "Claim form - part B",
                          "Supporting statement"])
    if layout == "grid":
        cells = [(_label("ref", rng), ref)] + [(_label(k, rng), v) for k, v in pairs]
        rows = []
        for i in range(0, len(cells), 2):
            row = "".join(f"<th>{_e(lab)}</th><td>{_e(val)}</td>" for lab, val in cells[i:i + 2])
            rows.append(f"<tr>{row}</tr>")
        return _page(f"<h2>{_e(heading)}</h2><table>{''.join(rows)}</table><p>{_e(body)}</p>", heading)
    if layout == "label_after":
        lines = [f"{_e(ref)} ({_e(_label('ref', rng).lower())})"]
        lines += [f"{_e(v)} &mdash; {_e(_label(k, rng).lower())}" for k, v in pairs]
        return _page(f"<h3>{_e(heading)}</h3><p>{'<br>'.join(lines)}</p><p>{_e(body)}</p>", heading)
    if layout == "label_above":
        blocks = [f"<p><b>{_e(_label('ref', rng))}:</b><br>{_e(ref)}</p>"]
        blocks += [f"<p><b>{_e(_label(k, rng))}:</b><br>{_e(v)}</p>" for k, v in pairs]
        return _page(f"<h3>{_e(heading)}</h3>{''.join(blocks)}<p>{_e(body)}</p>", heading)
    if layout == "caps":
        lines = [f"{_e(_label('ref', rng).upper())}: {_e(ref.upper())}"]
        lines += [f"{_e(_label(k, rng).upper())}: {_e(v.upper() if k != 'email' else v)}" for k, v in pairs]
        return _page(f"<h3>{_e(heading.upper())}</h3><p>{'<br>'.join(lines)}</p><p>{_e(body.upper())}</p>", heading)
    if layout == "ocr_noise":
        lines = [f"{_e(_label('ref', rng))}: {_e(ref)}"]
        lines += [f"{_e(_label(k, rng))}: {_e(v if k == 'email' else ocr_noise(v, rng))}" for k, v in pairs]
        return _page(f"<h3>{_e(heading)}</h3><p>{'<br>'.join(lines)}</p><p>{_e(body)}</p>", heading)
    if layout == "split":
        def broken(k: str, v: str) -> str:
            if k == "account":
                cut = max(2, len(v) // 2)
                return f"{_e(v[:cut])}<br>{_e(v[cut:])}"
            if k in ("name", "postcode", "address") and " " in v:
                head, tail = v.rsplit(" ", 1) if k != "name" else v.split(" ", 1)
                return f"{_e(head)}<br>{_e(tail)}"
            return _e(v)
        rows = [f"<tr><td>{_e(_label('ref', rng))}</td><td>{_e(ref)}</td></tr>"]
        rows += [f"<tr><td>{_e(_label(k, rng))}</td><td>{broken(k, v)}</td></tr>" for k, v in pairs]
        return _page(f"<h3>{_e(heading)}</h3><table class='narrow'>{''.join(rows)}</table><p>{_e(body)}</p>",
                     heading)
    assert layout == "address_block"
    who = pairs  # the address block: name, street, town, postcode
    block = "<br>".join(_e(v) for _k, v in who)
    date = fake.date_between(start_date="-60d", end_date="today").strftime("%d %B %Y")
    return _page(f"<p>{block}</p><p style='text-align:right'>{_e(date)}</p>"
                 f"<p><b>Re: {_e(ref)}</b></p><p>Dear Sir or Madam,</p><p>{_e(body)}</p>"
                 f"<p>Yours faithfully</p>", "letter")


def address_block(c: Customer, rng: random.Random) -> list[tuple[str, str]]:
    name = rng.choice([c.name, f"{c.first[0]} {c.last}", f"Mr {c.name}", f"Ms {c.first[0]}. {c.last}"])
    return [("name", name), ("address", c.street), ("town", c.town), ("postcode", c.postcode)]


def _one_digit_off(value: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(value) if ch.isdigit()]
    i = rng.choice(spots[1:] or spots)
    other = rng.choice([d for d in "0123456789" if d != value[i] and _OCR_SWAPS.get(d) is None])
    return value[:i] + other + value[i + 1:]


def make_docs(customers: list[Customer], fake: Faker, rng: random.Random, n: int) -> list[Doc]:
    docs: list[Doc] = []
    for i in range(n):
        layout = LAYOUTS[i % len(LAYOUTS)]
        c = rng.choice(customers)
        ref = rng.choice(c.refs)
        negative = rng.random() < 0.25
        if layout == "address_block":
            if negative:
                who = rng.choice(["stranger", "other", "first_name"])
                if who == "stranger":
                    fresh = _plain_name(fake)
                    pairs = [("name", fresh), ("address", fake.street_address()), ("town", fake.city()),
                             ("postcode", fake.postcode())]
                elif who == "other":
                    o = rng.choice([x for x in customers if x is not c])
                    pairs = address_block(o, rng)
                else:
                    pairs = [("name", f"{c.first} {fake.last_name()}"), ("address", fake.street_address()),
                             ("town", c.town), ("postcode", c.postcode)]
            else:
                pairs = address_block(c, rng)
            kinds: tuple[str, ...] = ("address_block",)
        elif negative:
            who = rng.choice(["stranger", "other", "first_name", "near"])
            if who == "near":  # one digit off the account and phone, the surname under another first name
                pairs = [("name", f"{fake.first_name()} {c.last}"), ("account", _one_digit_off(c.account, rng)),
                         ("phone", _one_digit_off(c.phone, rng))]
            elif who == "stranger":
                person = Customer("x", _plain_name(fake), fake.email(), f"07{rng.randint(100, 999)} "
                                 f"{rng.randint(100_000, 999_999)}", fake.street_address(), fake.city(),
                                 fake.postcode(), f"{rng.randint(10_000_000, 99_999_999)}")
                pairs = details_of(person, rng.sample(list(DETAIL_KINDS), k=2))
            elif who == "other":
                o = rng.choice([x for x in customers if x is not c])
                pairs = details_of(o, rng.sample(list(DETAIL_KINDS), k=2))
            else:
                pairs = [("name", f"{c.first} {fake.last_name()}"), ("postcode", c.postcode)]
            kinds = (who,)
        else:
            kinds = tuple(rng.sample(list(DETAIL_KINDS), k=rng.randint(1, 3)))
            pairs = details_of(c, list(kinds))
        page = render(layout, ref, pairs, rng, c, fake)
        kind = "email" if i % 5 == 4 else "pdf"
        docs.append(Doc(name=f"{i:04d}-{layout}{'-neg' if negative else ''}", layout=layout, ref=ref,
                        expected_ref=None if negative else ref, html=page, kind=kind, details=kinds))
    return docs


# -- files -----------------------------------------------------------------------------------

def write_inputs(customers: list[Customer], docs: list[Doc], fake: Faker, out: Path) -> Path:
    with (out / "customers.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "name", "email", "phone", "address", "postcode", "account_number"])
        for c in customers:
            w.writerow([c.customer_id, c.name, c.email, c.phone, f"{c.street}, {c.town}", c.postcode, c.account])
    with (out / "cases.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ref", "customer_id", "case_type", "status", "opened_at", "subject"])
        for c in customers:
            for ref in c.refs:
                w.writerow([ref, c.customer_id, "general", "open", "2024-11-02", "imported"])
    inbox = out / "inbox"
    inbox.mkdir()
    pdfs = [d for d in docs if d.kind == "pdf"]
    _print_pdfs(pdfs, inbox)
    for d in docs:
        if d.kind != "email":
            continue
        msg = EmailMessage()
        msg["From"] = f"{_plain_name(fake)} <{fake.user_name()}{d.name[:4]}@{fake.free_email_domain()}>"
        msg["To"] = "claims@insurer.example"
        msg["Subject"] = fake.sentence(nb_words=4).rstrip(".")
        msg["Date"] = format_datetime(fake.date_time_between(start_date="-30d", tzinfo=None).astimezone())
        msg["Message-ID"] = f"<{d.name}.{fake.uuid4()}@mail.example>"
        msg.set_content(d.html, subtype="html")  # HTML only, as web-form mailers send it
        (inbox / f"{d.name}.eml").write_bytes(bytes(msg))
    return inbox


def _print_pdfs(docs: list[Doc], inbox: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                          "--disable-background-networking"])
        page = browser.new_page()
        for d in docs:
            page.set_content(d.html)
            page.pdf(path=str(inbox / f"{d.name}.pdf"), format="A4")
        browser.close()


# -- measuring -------------------------------------------------------------------------------

def casework(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "api", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"casework {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def score(docs: list[Doc], results: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {Path(r["source"]).stem: r for r in results}
    per: dict[str, Counter[str]] = defaultdict(Counter)
    negatives: Counter[str] = Counter()
    misses: list[str] = []
    for d in docs:
        r = by_name[d.name]
        got = r.get("case_ref") if r["outcome"] == "attached" else None
        for key in ("all", d.layout, d.kind):
            c = per[key]
            if d.expected_ref is not None:
                c["positives"] += 1
                c["right"] += got == d.expected_ref
            c["attached"] += got is not None
            c["wrong"] += got is not None and got != d.expected_ref
        if d.expected_ref is None:
            negatives[r["outcome"]] += 1
        elif got != d.expected_ref:
            misses.append(f"{d.name} {'+'.join(d.details)} -> {r['outcome']}")

    def rates(c: Counter[str]) -> dict[str, Any]:
        return {"positives": c["positives"],
                "precision": round(c["right"] / c["attached"], 3) if c["attached"] else None,
                "recall": round(c["right"] / c["positives"], 3) if c["positives"] else None, "wrong": c["wrong"]}

    return {"overall": rates(per["all"]), "by_layout": {k: rates(per[k]) for k in (*LAYOUTS, "pdf", "email")},
            "negatives": dict(negatives), "missed": misses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--customers", type=int, default=80)
    parser.add_argument("--items", type=int, default=140)
    parser.add_argument("--keep", type=Path, help="write the inputs and data here and keep them")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    fake = Faker("en_GB")
    fake.seed_instance(args.seed)
    customers = make_customers(fake, rng, args.customers)
    docs = make_docs(customers, fake, rng, args.items)
    work = args.keep or Path(tempfile.mkdtemp(prefix="unseen-forms-"))
    work.mkdir(parents=True, exist_ok=True)
    inbox = write_inputs(customers, docs, fake, work)
    env = {**os.environ, "CASEWORK_DATA_DIR": str(work / "data"), "PYTHONPATH": str(ROOT)}
    casework(["import", "customers", str(work / "customers.csv")], env)
    casework(["import", "cases", str(work / "cases.csv")], env)
    ingested = json.loads(casework(["ingest", str(inbox), "--json"], env))
    report = score(docs, ingested["results"])
    report.update({"seed": args.seed, "items": len(docs), "customers": len(customers),
                   "outcomes": {k: ingested.get(k) for k in ("attached", "new_case", "triage", "noise", "failed")},
                   "seconds": ingested.get("seconds")})
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
