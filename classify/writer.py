"""Who wrote an item, from what it says: someone a person can answer, or nobody.

A case is opened only for someone: the matcher asks ``find_writer`` before opening a case for a
person it does not know, and the file stage keeps what it found as a prospect customer, so the
next item from the same person is matched to them (issue 11.2 and 11.3).

The writer is

* the sender: the email address (unless it is a machine's: no-reply, mailer-daemon, ...), the
  phone number of an SMS or call, a web form's address and number; the display name or the
  form's name field;
* else, in the content of a letter, form or file: a person's name given as its writer (a
  ``Name:`` field, a signature, "my name is") together with a way to reach them: an email
  address, a phone number or a postcode (the address is the lines that end with it).  A
  greeting names the addressee, not the writer, and does not count.

A data export (several records, or more than ``MAX_CONTACTS`` distinct addresses or numbers)
names many people and none as its writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from classify.entities import Entities, normalise_phone

MAX_CONTACTS = 3  # more distinct emails (or phones) than this in the content: a list, not a letter
WRITER_ROLES = ("field", "sign-off", "my-name-is")

_MACHINE_LOCAL = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|mailer[-_.]?daemon|postmaster|bounces?|"
    r"notifications?|alerts?|newsletters?|news|marketing|mailer|automailer|system)(?:[-_.+].*)?$",
    re.IGNORECASE)
_STREET_WORD = re.compile(r"(?i)\b(?:street|road|lane|avenue|close|drive|way|place|court|crescent|gardens|square"
                          r"|terrace|grove|park|walk|row|hill)\b")


@dataclass(frozen=True, slots=True)
class Writer:
    """What an item says about who wrote it; ``found`` says where each value came from."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None  # E.164
    address: str | None = None
    postcode: str | None = None
    found: tuple[str, ...] = ()

    def evidence(self) -> dict[str, object]:
        return {"name": self.name, "email": self.email, "phone": self.phone, "address": self.address,
                "postcode": self.postcode, "found": list(self.found)}


def is_machine_address(email: str) -> bool:
    """no-reply@, mailer-daemon@, notifications@ ...: nobody reads what is sent there."""
    return _MACHINE_LOCAL.match(email.partition("@")[0]) is not None


def _display_name(name: str | None, email: str | None) -> str | None:
    if not name:
        return None
    cleaned = " ".join(name.replace('"', " ").split()).strip(" '")
    if not cleaned or "@" in cleaned or not any(ch.isalpha() for ch in cleaned):
        return None
    if email and cleaned.lower() == email.partition("@")[0].lower():
        return None
    return cleaned[:300]


def _address_before(text: str, start: int) -> str | None:
    """The address lines that end with the postcode at ``start``: the postcode's own line (its
    town) and up to two lines above it that look like an address (start with a number, or hold
    a street word)."""
    line_start = text.rfind("\n", 0, start) + 1
    town = text[line_start:start].strip(" ,\t\r")
    lines = [town] if town else []
    above = text[:line_start].rstrip("\r\n").split("\n")[-2:]
    for line in reversed(above):
        line = line.strip(" ,\t\r")
        if re.match(r"^(?:flat |apartment |unit )?\d+[A-Za-z]?\b", line, re.IGNORECASE) or _STREET_WORD.search(line):
            lines.insert(0, line)
        else:
            break
    joined = ", ".join(line for line in lines if line)
    return joined[:500] or None


def find_writer(*, sender_email: str | None, sender_phone: str | None, sender_name: str | None, text: str,
                entities: Entities, records: int = 0, phone_region: str = "GB") -> Writer | None:
    """The person who wrote the item and how to reach them, or None when nobody can be answered.

    ``text`` is what ``entities`` were found in; ``records``: how many data records the item
    holds (a CSV or spreadsheet export)."""
    found: list[str] = []
    email = sender_email.strip().lower() if sender_email and not is_machine_address(sender_email) else None
    if email:
        found.append("sender email")
    phone = normalise_phone(sender_phone, region=phone_region) if sender_phone else None
    if phone:
        found.append("sender phone")
    name = _display_name(sender_name, sender_email)
    if name:
        found.append("sender name")

    emails = list(dict.fromkeys(e.value for e in entities.emails))
    phones = list(dict.fromkeys(p.value for p in entities.phones))
    a_list = records > 1 or len(emails) > MAX_CONTACTS or len(phones) > MAX_CONTACTS
    if not a_list:
        signed = [n for n in entities.names if n.role in WRITER_ROLES]
        if name is None and signed:
            best = max(signed, key=lambda n: (n.confidence, -n.start))
            name = best.value
            found.append(f"name ({best.role})")
        postcode = address = None
        if name is not None and entities.postcodes:
            first = entities.postcodes[0]
            postcode = first.value
            address = _address_before(text, first.start)
            found.append("postcode" + (" and address" if address else ""))
        if name is not None:
            # a letter, form or signature: the writer's own contact details, when it gives one of each
            if email is None and len(emails) == 1 and not is_machine_address(emails[0]):
                email = emails[0]
                found.append("email in the text")
            if phone is None and len(phones) == 1:
                phone = phones[0]
                found.append("phone in the text")
        if email or phone or (name and postcode):
            return Writer(name=name, email=email, phone=phone, address=address, postcode=postcode, found=tuple(found))
        return None
    if email or phone:
        return Writer(name=name, email=email, phone=phone, found=tuple(found))
    return None
