"""Born-digital forms and letters in many layouts that quote a case reference beside the
customer's own details (issue 11.1), rendered with fpdf2 (a PDF text layer, as an office
system or a web form writes it) or as an email.

Each layout writes the same facts differently: labels ("Customer", "Policy holder", "Acct
no.", "Our ref"), label and value on one line, on two lines, in a table, in two columns, in a
dotted reply slip, in a letter's greeting and signature, in a subject line.  The customer's
identifiers are written the way people and office systems do: an account number with spaces
or hyphens, its prefix dropped, an O for a 0; a postcode in lower case or without its space;
the name as "G. Green", "GREEN, George" or "Mr George Green".

``TUNED`` are the layouts looked at while building ``classify.agreement``; ``HELD_OUT`` are
the others, and the tests and the benchmark measure on those.

Every positive item carries the case reference and at least one identifier that is the case
customer's own; the negatives quote a reference with somebody else's details (a new person,
another known customer, the case customer's first name or postcode alone) and must go to triage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from fpdf import FPDF

from .mailroom import FIRST, NEW_LAST, STREETS, Expected, MailItem, Person
from .mailroom_render import email_bytes

Block = tuple[str, object]  # ("line", str) | ("table", [(label, value)]) | ("cols", (left, right))


@dataclass(frozen=True)
class Facts:
    """What one item says about its writer, as written (already varied)."""

    ref: str
    name: str | None = None
    account: str | None = None
    postcode: str | None = None
    address: str | None = None
    email: str | None = None
    phone: str | None = None
    greeting_name: str | None = None  # "Dear Mr Green" in a returned letter of ours


def _account_as_written(account: str, rng: random.Random) -> str:
    how = rng.choice(["spaces", "hyphens", "o-for-0", "no-prefix", "plain"])
    prefix, _, digits = account.rpartition("-") if "-" in account else ("", "", account)
    if how == "spaces":
        return " ".join(digits[i:i + 4] for i in range(0, len(digits), 4)) if not prefix else \
            f"{prefix} {digits[:3]} {digits[3:]}"
    if how == "hyphens":
        return "-".join(digits[i:i + 2] for i in range(0, len(digits), 2))
    if how == "o-for-0" and "0" in digits:
        return account.replace("0", "O", 1)
    if how == "no-prefix" and prefix and len(digits) >= 6:
        return digits
    return account


def _postcode_as_written(postcode: str, rng: random.Random) -> str:
    return rng.choice([postcode, postcode.replace(" ", ""), postcode.lower(), f"{postcode[:-3]}  {postcode[-3:]}"])


def _name_as_written(p: Person, rng: random.Random) -> str:
    return rng.choice([p.name, f"{p.first[0]}. {p.last}", f"{p.last.upper()}, {p.first}", f"Mr {p.name}",
                       f"{p.first[0]} {p.last}", f"{p.first} {p.last.upper()}"])


def facts_for(p: Person, ref: str, rng: random.Random) -> Facts:
    """The case customer's own details, one to three of them, written in varied ways."""
    kinds = rng.sample(["account", "name_postcode", "name", "email", "phone", "name_address"], k=rng.randint(1, 3))
    name = _name_as_written(p, rng) if {"name_postcode", "name", "name_address"} & set(kinds) else None
    return Facts(
        ref=ref, name=name,
        account=_account_as_written(p.account, rng) if "account" in kinds else None,
        postcode=_postcode_as_written(p.postcode, rng) if "name_postcode" in kinds else None,
        address=f"{p.street}, {p.town}" if "name_address" in kinds else None,
        email=p.email if "email" in kinds else None,
        phone=p.phone if "phone" in kinds else None,
    )


def _labelled(f: Facts, labels: dict[str, str]) -> list[tuple[str, str]]:
    pairs = [(labels["ref"], f.ref)]
    for key, value in (("name", f.name), ("account", f.account), ("address", f.address),
                       ("postcode", f.postcode), ("email", f.email), ("phone", f.phone)):
        if value:
            pairs.append((labels[key], value))
    return pairs


LABELS = [
    {"ref": "Our ref", "name": "Customer", "account": "Account", "address": "Address", "postcode": "Postcode",
     "email": "Email", "phone": "Tel"},
    {"ref": "Case reference", "name": "Policy holder", "account": "Acct no.", "address": "Property",
     "postcode": "Post code", "email": "E-mail address", "phone": "Daytime phone"},
    {"ref": "Reference", "name": "Name", "account": "Customer number", "address": "Address line 1",
     "postcode": "Postcode", "email": "Contact email", "phone": "Mobile"},
    {"ref": "Your reference", "name": "Insured", "account": "Policy", "address": "Risk address",
     "postcode": "PC", "email": "Email", "phone": "Phone no"},
]
TOPICS = ["Supporting documents for my claim.", "Reply to your letter of 3 February.",
          "Bank details for the refund.", "Signed declaration enclosed as requested."]


def label_colon(f: Facts, rng: random.Random) -> list[Block]:
    return [("line", "Claim form - supporting information"),
            *[("line", f"{k}: {v}") for k, v in _labelled(f, rng.choice(LABELS))], ("line", rng.choice(TOPICS))]


def letter_greeting(f: Facts, rng: random.Random) -> list[Block]:
    lines: list[Block] = [("line", "Casework Insurance, PO Box 12, Leeds LS1 1AA"), ("line", f"Our ref: {f.ref}")]
    if f.name:
        lines.append(("line", f"Dear {f.name},"))
    lines += [("line", "Please sign and return this letter with the documents listed."), ("line", rng.choice(TOPICS))]
    for value in (f.address, f.postcode, f.account, f.email, f.phone):
        if value:
            lines.append(("line", value))
    return lines


def label_newline(f: Facts, rng: random.Random) -> list[Block]:
    out: list[Block] = [("line", "RETURN FORM")]
    for k, v in _labelled(f, rng.choice(LABELS)):
        out += [("line", k), ("line", v)]
    return [*out, ("line", rng.choice(TOPICS))]


def table(f: Facts, rng: random.Random) -> list[Block]:
    return [("line", "Details of the policy holder"), ("table", _labelled(f, rng.choice(LABELS))),
            ("line", rng.choice(TOPICS))]


def two_columns(f: Facts, rng: random.Random) -> list[Block]:
    pairs = _labelled(f, rng.choice(LABELS))
    rows: list[Block] = [("line", "APPLICATION UPDATE")]
    for i in range(0, len(pairs), 2):
        left = f"{pairs[i][0]}: {pairs[i][1]}"
        right = f"{pairs[i + 1][0]}: {pairs[i + 1][1]}" if i + 1 < len(pairs) else ""
        rows.append(("cols", (left, right)))
    return [*rows, ("line", rng.choice(TOPICS))]


def reply_slip(f: Facts, rng: random.Random) -> list[Block]:
    out: list[Block] = [("line", "- - - - - - - - detach and return - - - - - - - -")]
    out += [("line", f"{k} {'.' * rng.randint(6, 14)} {v}") for k, v in _labelled(f, rng.choice(LABELS))]
    return out


def signed_letter(f: Facts, rng: random.Random) -> list[Block]:
    """A letter from the customer: the reference in a subject line, details in the signature."""
    lines: list[Block] = [("line", "Dear Sir or Madam,"), ("line", f"RE: {f.ref} - {rng.choice(TOPICS)}"),
                          ("line", "Please add the enclosed to my file. I look forward to hearing from you."),
                          ("line", "Yours faithfully,")]
    for value in (f.name, f.address, f.postcode, f.account and f"Acct {f.account}", f.email, f.phone):
        if value:
            lines.append(("line", value))
    return lines


LAYOUTS: dict[str, Callable[[Facts, random.Random], list[Block]]] = {
    "label-colon": label_colon, "letter-greeting": letter_greeting, "label-newline": label_newline,
    "table": table, "two-columns": two_columns, "reply-slip": reply_slip, "signed-letter": signed_letter,
}
TUNED = ("label-colon", "letter-greeting")
HELD_OUT = ("label-newline", "table", "two-columns", "reply-slip", "signed-letter")


def render_pdf(blocks: Sequence[Block], rng: random.Random) -> bytes:
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font(rng.choice(["Helvetica", "Times", "Courier"]), size=rng.choice([9, 10, 11]))
    for kind, value in blocks:
        if kind == "line":
            pdf.multi_cell(0, 6, str(value), new_x="LMARGIN", new_y="NEXT")
        elif kind == "table":
            with pdf.table(col_widths=(45, 95), first_row_as_headings=False) as t:
                for label, cell in value:  # type: ignore[attr-defined]
                    row = t.row()
                    row.cell(label)
                    row.cell(cell)
        else:
            left, right = cast(tuple[str, str], value)
            pdf.cell(95, 6, left)
            pdf.cell(95, 6, right, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def as_text(blocks: Sequence[Block]) -> str:
    """The blocks as a plain-text email body (tables as "label: value", columns side by side)."""
    lines: list[str] = []
    for kind, value in blocks:
        if kind == "line":
            lines.append(str(value))
        elif kind == "table":
            lines.extend(f"{label}: {cell}" for label, cell in value)  # type: ignore[attr-defined]
        else:
            lines.append("    ".join(value))  # type: ignore[arg-type]
    return "\n".join(lines)


def _stranger_facts(ref: str, rng: random.Random) -> Facts:
    first, last = rng.choice(FIRST), rng.choice(NEW_LAST)
    return Facts(ref=ref, name=f"{first} {last}", account=f"{rng.randint(10_000_000, 99_999_999)}",
                 postcode=f"HU{rng.randint(1, 9)} {rng.randint(1, 9)}QP",
                 address=f"{rng.randint(1, 90)} {rng.choice(STREETS)}, Hull")


def generate_forms(people: Sequence[Person], rng: random.Random, *, n: int, layouts: Sequence[str] = HELD_OUT,
                   negatives: int = 0) -> list[MailItem]:
    """``n`` items quoting a case of theirs with the case customer's own details, and
    ``negatives`` quoting someone else's case (expected: triage)."""
    with_any = [p for p in people if p.open_refs]
    items: list[MailItem] = []

    def add(kind: str, f: Facts, expected: Expected) -> None:
        layout = rng.choice(list(layouts))
        name = f"{kind}-{layout}-{len(items):03d}"
        blocks = LAYOUTS[layout](f, rng)
        if rng.random() < 0.2:  # now and then the same by email, from an address we do not know
            data, _ = email_bytes(sender=f"post{len(items)}@scanner.example", subject=f"Form {f.ref}",
                                   body=as_text(blocks))
            items.append(MailItem(name, f"form-{kind}", "email", data, f"{name}.eml", "message/rfc822", expected))
            return
        items.append(MailItem(name, f"form-{kind}", "file", render_pdf(blocks, rng), f"{name}.pdf",
                              "application/pdf", expected))

    for _ in range(n):
        p = rng.choice(with_any)
        ref = rng.choice(p.open_refs)
        add("own-details", facts_for(p, ref, rng), Expected("attached", ref, p.customer_id))
    for k in range(negatives):
        victim = rng.choice(with_any)
        ref = rng.choice(victim.open_refs)
        if k % 3 == 0:  # a new person's details
            f = _stranger_facts(ref, rng)
        elif k % 3 == 1:  # another known customer's details
            other = rng.choice([p for p in people if p.last != victim.last])
            f = Facts(ref=ref, name=other.name, account=other.account, postcode=other.postcode)
        else:  # the victim's first name and postcode, someone else's surname
            f = Facts(ref=ref, name=f"{victim.first} {rng.choice(NEW_LAST)}", postcode=victim.postcode)
        add("someone-elses-ref", f, Expected("triage"))
    return items
