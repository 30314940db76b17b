"""Mailroom items with nobody to answer (issue 11.3): files that name no writer and no way to reach
one (a README, data exports, a system's notice from a no-reply address, a page without a
signature) go to triage; list mail from strangers is noise.  And letters and mails from new
people that do say who wrote (expected: a new case), so the rule is measured both ways."""

from __future__ import annotations

import random

from .mailroom import FIRST, NEW_LAST, STREETS, Expected, MailItem
from .mailroom_render import email_bytes

READMES = [
    "# Example data\n\nThese files are used by the test suite. Run `make test`.\nLicence: MIT.\n",
    "Release notes 4.2\n\n* faster start-up\n* fixes a crash when the cache is full\n\nSee CHANGES for more.\n",
    "Minutes of the weekly meeting\n\nPresent: the operations team.\nActions: review the backlog; "
    "next meeting on Tuesday.\n",
]


def _csv(rng: random.Random, rows: int) -> bytes:
    lines = ["date,product,issue,state,zip"]
    for i in range(rows):
        lines.append(f"2026-02-{1 + i % 28:02d},{rng.choice(['Mortgage', 'Credit card', 'Loan'])},"
                     f"{rng.choice(['Late fee', 'Billing', 'Overdraft'])},{rng.choice(['FL', 'TX', 'CA'])},"
                     f"{rng.randint(10000, 99999)}")
    return ("\n".join(lines) + "\n").encode()


def generate_nobody(rng: random.Random, *, n: int) -> list[MailItem]:
    """``n`` rounds of: a README or notes file, a CSV export, a no-reply notice, list mail, and a
    new person's letter (file) that gives a name and postcode."""
    items: list[MailItem] = []

    def add(kind: str, channel: str, data: bytes, filename: str, ctype: str, expected: Expected) -> None:
        items.append(MailItem(f"{kind}-{len(items):03d}", kind, channel, data, filename, ctype, expected))

    for i in range(n):
        add("nobody-readme", "file", rng.choice(READMES).encode(), "README.md", "text/plain", Expected("triage"))
        add("nobody-export", "file", _csv(rng, rng.randint(3, 40)), "export.csv", "text/csv", Expected("triage"))
        data, _ = email_bytes(sender=f"no-reply@portal{i}.example", subject="Your statement is ready",
                              body="Your monthly statement is available in the portal. Do not reply to this email.")
        add("nobody-no-reply", "email", data, "notice.eml", "message/rfc822", Expected("triage"))
        data, _ = email_bytes(sender=f"Deals <offers@shop{i}.example>", subject="This weekend only: 40% off",
                              body="Our biggest sale of the year. Unsubscribe at any time.")
        data = b"List-Unsubscribe: <mailto:leave@shop.example>\r\nPrecedence: bulk\r\n" + data
        add("nobody-list-mail", "email", data, "offer.eml", "message/rfc822", Expected("noise"))
        first, last = rng.choice(FIRST), rng.choice(NEW_LAST)
        letter = (f"{first} {last}\n{rng.randint(1, 90)} {rng.choice(STREETS)}\nHull HU{rng.randint(1, 9)} 3QP\n\n"
                  "Dear Sir or Madam,\n\nI would like to make a claim for the storm damage to my fence.\n\n"
                  f"Yours faithfully,\n{first} {last}\n")
        add("new-writer-letter", "file", letter.encode(), "letter.txt", "text/plain", Expected("new_case"))
    return items
