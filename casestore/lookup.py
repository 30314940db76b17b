"""``StoreLookup``: what the classifier may ask the store, answered from a Session.

It satisfies ``classify.lookup.CaseLookup`` structurally; casestore does not import classify.
Results are small frozen dataclasses, detached from the Session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from casestore.models import Case, Customer, CustomerNameWord, Item, name_words, utcnow
from casestore.validation import normalise_phone, normalise_postcode, text_or_none

NAME_MATCH_LIMIT = 50
SENDERS_LIMIT = 50
SMS_THREAD_DAYS = 30


@dataclass(frozen=True)
class CustomerInfo:
    customer_id: str
    name: str
    email: str | None
    phone: str | None
    postcode: str | None
    account_number: str | None
    address: str | None = None


@dataclass(frozen=True)
class CaseInfo:
    ref: str
    customer_id: str | None  # the CRM id
    case_type: str
    status: str


def _bare_message_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


# The hot look-ups are built once, on the tables (Core, not ORM entities): the matcher asks
# several per item, and building and ORM-loading each statement cost more than running it.
_customers = Customer.__table__
_cases = Case.__table__
_words = CustomerNameWord.__table__
_CUSTOMER_COLUMNS = (_customers.c.id, _customers.c.customer_id, _customers.c.name, _customers.c.email,
                     _customers.c.phone, _customers.c.postcode, _customers.c.account_number, _customers.c.address)
_CUSTOMER_BY: dict[str, Select[Any]] = {
    key: select(*_CUSTOMER_COLUMNS).where(column == bindparam("value")).order_by(_customers.c.id)
    for key, column in (("email", _customers.c.email), ("phone", _customers.c.phone_normalised),
                        ("account_number", _customers.c.account_number),
                        ("postcode", _customers.c.postcode_normalised))
}
_CUSTOMER_BY_NAME_WORD = (
    select(*_CUSTOMER_COLUMNS).join(_words, _words.c.customer_id == _customers.c.id)
    .where(_words.c.word == bindparam("value")).order_by(_customers.c.id).limit(NAME_MATCH_LIMIT)
)
_CASE_BY_REF = (
    select(_cases.c.ref, _customers.c.customer_id, _cases.c.case_type, _cases.c.status)
    .select_from(_cases.outerjoin(_customers, _cases.c.customer_id == _customers.c.id))
    .where(_cases.c.ref == bindparam("ref"))
)

# The batch forms (``cases_by_refs``, ``customers_by_emails``): an expanding IN, rendered once
# per distinct length; a classify batch asks each of them once.
BATCH_CHUNK = 500
_CASES_BY_REFS = (
    select(_cases.c.ref, _customers.c.customer_id, _cases.c.case_type, _cases.c.status)
    .select_from(_cases.outerjoin(_customers, _cases.c.customer_id == _customers.c.id))
    .where(_cases.c.ref.in_(bindparam("refs", expanding=True)))
)
_CUSTOMERS_BY_EMAILS = (
    select(*_CUSTOMER_COLUMNS, _customers.c.email.label("asked"))
    .where(_customers.c.email.in_(bindparam("emails", expanding=True))).order_by(_customers.c.id)
)

# ``find_customers(name=...)`` for several name words at once: each word's first NAME_MATCH_LIMIT
# customers by id, as the one-word query gives them.
_ranked_words = (
    select(*_CUSTOMER_COLUMNS, _words.c.word.label("asked"),
           func.row_number().over(partition_by=_words.c.word, order_by=_customers.c.id).label("n"))
    .join(_words, _words.c.customer_id == _customers.c.id)
    .where(_words.c.word.in_(bindparam("words", expanding=True)))
    .subquery()
)
_CUSTOMERS_BY_NAME_WORDS = (
    select(*[c for c in _ranked_words.c if c.name != "n"])
    .where(_ranked_words.c.n <= NAME_MATCH_LIMIT).order_by(_ranked_words.c.asked, _ranked_words.c.id)
)


def _customer_row(row: Sequence[Any]) -> CustomerInfo:
    return CustomerInfo(*row[1:])


class StoreLookup:
    """Case and customer look-ups for matching inbound items to cases."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def case_by_ref(self, ref: str) -> CaseInfo | None:
        """The case with this exact reference (legacy or own format), or None."""
        row = self._session.connection().execute(_CASE_BY_REF, {"ref": ref.strip()}).first()
        return None if row is None else CaseInfo(*row)

    def find_customers(
        self, *, email: str | None = None, phone: str | None = None, account_number: str | None = None,
        postcode: str | None = None, name: str | None = None,
    ) -> Sequence[CustomerInfo]:
        """Customers matching any of the given identifiers: email case-insensitive, phone and
        postcode normalised, account number exact, ``name`` a word of the customer's name
        (case-insensitive; at most 50 customers for it)."""
        asked = {
            "email": (text_or_none(email) or "").lower() or None,
            "phone": normalise_phone(phone),
            "account_number": text_or_none(account_number),
            "postcode": normalise_postcode(postcode),
        }
        connection = self._session.connection()
        rows: dict[int, Sequence[Any]] = {}
        for key, value in asked.items():
            if value is not None:
                for row in connection.execute(_CUSTOMER_BY[key], {"value": value}):
                    rows.setdefault(row[0], row)
        found = {row[1]: _customer_row(row) for _, row in sorted(rows.items())}
        words = name_words(text_or_none(name) or "")
        if len(words) == 1 and len(words[0]) >= 2:
            for row in connection.execute(_CUSTOMER_BY_NAME_WORD, {"value": words[0]}):
                found.setdefault(row[1], _customer_row(row))
        return list(found.values())

    def cases_by_refs(self, refs: Sequence[str]) -> dict[str, CaseInfo | None]:
        """``case_by_ref`` for each of ``refs`` in one query: every ref given is a key."""
        wanted = {ref: ref.strip() for ref in refs}
        found: dict[str, CaseInfo] = {}
        values = sorted(set(wanted.values()))
        for start in range(0, len(values), BATCH_CHUNK):
            rows = self._session.connection().execute(_CASES_BY_REFS, {"refs": values[start:start + BATCH_CHUNK]})
            found.update((row[0], CaseInfo(*row)) for row in rows)
        return {ref: found.get(stripped) for ref, stripped in wanted.items()}

    def customers_by_emails(self, emails: Sequence[str]) -> dict[str, list[CustomerInfo]]:
        """``find_customers(email=e)`` for each of ``emails`` in one query: every address given is a
        key; its customers in the order ``find_customers`` gives them (by id)."""
        wanted = {email: (text_or_none(email) or "").lower() or None for email in emails}
        by_email: dict[str, list[CustomerInfo]] = {}
        values = sorted({v for v in wanted.values() if v is not None})
        for start in range(0, len(values), BATCH_CHUNK):
            rows = self._session.connection().execute(_CUSTOMERS_BY_EMAILS,
                                                      {"emails": values[start:start + BATCH_CHUNK]})
            for row in rows:  # ordered by id
                by_email.setdefault(row[-1], []).append(_customer_row(row[:-1]))
        return {email: list(by_email.get(value, [])) if value is not None else [] for email, value in wanted.items()}

    def customers_by_names(self, names: Sequence[str]) -> dict[str, list[CustomerInfo]]:
        """``find_customers(name=n)`` for each of ``names`` in one query: every name given is a key
        (a name that is not one word of two or more characters finds nobody, as there)."""
        wanted: dict[str, str | None] = {}
        for name in names:
            words = name_words(text_or_none(name) or "")
            wanted[name] = words[0] if len(words) == 1 and len(words[0]) >= 2 else None
        by_word: dict[str, dict[str, CustomerInfo]] = {}
        values = sorted({v for v in wanted.values() if v is not None})
        for start in range(0, len(values), BATCH_CHUNK):
            rows = self._session.connection().execute(_CUSTOMERS_BY_NAME_WORDS,
                                                      {"words": values[start:start + BATCH_CHUNK]})
            for row in rows:  # by word, then id
                by_word.setdefault(row[-1], {}).setdefault(row[1], _customer_row(row[:-1]))
        return {name: list(by_word.get(word, {}).values()) if word is not None else []
                for name, word in wanted.items()}

    def customer(self, customer_id: str) -> CustomerInfo | None:
        """The customer with this CRM id, or None."""
        row = self._session.connection().execute(
            select(*_CUSTOMER_COLUMNS).where(_customers.c.customer_id == customer_id.strip())).first()
        return None if row is None else _customer_row(row)

    def open_cases(self, customer_id: str) -> Sequence[CaseInfo]:
        """The customer's cases whose status is not closed, most recently active first."""
        rows = self._session.execute(
            select(Case.ref, Customer.customer_id, Case.case_type, Case.status)
            .join(Customer, Case.customer_id == Customer.id)
            .where(Customer.customer_id == customer_id.strip(), Case.status != "closed")
            .order_by(Case.updated_at.desc(), Case.id.desc())
        )
        return [CaseInfo(*row) for row in rows]

    def case_by_message_id(self, message_id: str) -> CaseInfo | None:
        """The case of the latest filed item with this Message-ID (angle brackets optional), or None."""
        ref = self.message_known(message_id)
        return None if ref is None else self.case_by_ref(ref)

    def case_senders(self, ref: str) -> Sequence[str]:
        """Senders (email addresses lower-case, phone numbers) of the items filed in this case
        (inbound only: the sender of a message we sent is one of our agents)."""
        rows = self._session.scalars(
            select(Item.sender).join(Case, Item.case_id == Case.id)
            .where(Case.ref == ref.strip(), Item.sender.is_not(None), Item.direction == "in")
            .distinct().limit(SENDERS_LIMIT)
        )
        return sorted({s.strip().lower() for s in rows if s and s.strip()})

    def case_of_last_sms_to(self, number: str) -> CaseInfo | None:
        """The case of the latest SMS we sent to this number (E.164) in the last 30 days, or None.

        Reads the outbound folder entries (``direction='out'``, whose ``metadata['to']`` is the
        number), newest first through the partial index ``ix_items_outbound``."""
        wanted = normalise_phone(number)
        if not wanted:
            return None
        ref = self._session.scalar(
            select(Case.ref).join(Item, Item.case_id == Case.id)
            .where(Item.direction == "out", Item.channel == "sms",
                   Item.received_at >= utcnow() - timedelta(days=SMS_THREAD_DAYS),
                   Item.meta["to"].as_string() == wanted)
            .order_by(Item.received_at.desc())
            .limit(1)
        )
        return None if ref is None else self.case_by_ref(ref)

    def message_known(self, message_id: str) -> str | None:
        """The case ref of the latest filed item whose ``metadata['message_id']`` is this
        Message-ID (with or without angle brackets), or None."""
        bare = _bare_message_id(message_id)
        if not bare:
            return None
        stored = Item.meta["message_id"].as_string()
        return self._session.scalar(
            select(Case.ref)
            .join(Item, Item.case_id == Case.id)
            .where(stored.in_([bare, f"<{bare}>"]))
            .order_by(Item.filed_at.desc())
            .limit(1)
        )
