"""``StoreLookup``: what the classifier may ask the store, answered from a Session.

It satisfies ``classify.lookup.CaseLookup`` structurally; casestore does not import classify.
Results are small frozen dataclasses, detached from the Session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from casestore.models import Case, Customer, Item
from casestore.validation import normalise_phone, normalise_postcode, text_or_none

NAME_MATCH_LIMIT = 50
SENDERS_LIMIT = 50


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


def _info(c: Customer) -> CustomerInfo:
    return CustomerInfo(c.customer_id, c.name, c.email, c.phone, c.postcode, c.account_number, c.address)


def _bare_message_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


class StoreLookup:
    """Case and customer look-ups for matching inbound items to cases."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def case_by_ref(self, ref: str) -> CaseInfo | None:
        """The case with this exact reference (legacy or own format), or None."""
        row = self._session.execute(
            select(Case.ref, Customer.customer_id, Case.case_type, Case.status)
            .outerjoin(Customer, Case.customer_id == Customer.id)
            .where(Case.ref == ref.strip())
        ).first()
        return None if row is None else CaseInfo(*row)

    def find_customers(
        self, *, email: str | None = None, phone: str | None = None, account_number: str | None = None,
        postcode: str | None = None, name: str | None = None,
    ) -> Sequence[CustomerInfo]:
        """Customers matching any of the given identifiers: email case-insensitive, phone and
        postcode normalised, account number exact, ``name`` a word of the customer's name
        (case-insensitive; at most 50 customers for it)."""
        conditions: list[ColumnElement[bool]] = []
        if (clean_email := text_or_none(email)) is not None:
            conditions.append(Customer.email == clean_email.lower())
        if (clean_phone := normalise_phone(phone)) is not None:
            conditions.append(Customer.phone_normalised == clean_phone)
        if (clean_account := text_or_none(account_number)) is not None:
            conditions.append(Customer.account_number == clean_account)
        if (clean_postcode := normalise_postcode(postcode)) is not None:
            conditions.append(Customer.postcode_normalised == clean_postcode)
        found: dict[str, CustomerInfo] = {}
        if conditions:
            for c in self._session.scalars(select(Customer).where(or_(*conditions)).order_by(Customer.id)):
                found[c.customer_id] = _info(c)
        word = (text_or_none(name) or "").lower()
        if len(word) >= 2 and not any(ch in word for ch in "%_\\"):
            by_name = self._session.scalars(
                select(Customer).where(func.lower(Customer.name).like(f"%{word}%"))
                .order_by(Customer.id).limit(NAME_MATCH_LIMIT)
            )
            for c in by_name:
                if word in c.name.lower().split():
                    found.setdefault(c.customer_id, _info(c))
        return list(found.values())

    def customer(self, customer_id: str) -> CustomerInfo | None:
        """The customer with this CRM id, or None."""
        c = self._session.scalar(select(Customer).where(Customer.customer_id == customer_id.strip()))
        return None if c is None else _info(c)

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
        """Senders (email addresses lower-case, phone numbers) of the items filed in this case."""
        rows = self._session.scalars(
            select(Item.sender).join(Case, Item.case_id == Case.id)
            .where(Case.ref == ref.strip(), Item.sender.is_not(None))
            .distinct().limit(SENDERS_LIMIT)
        )
        return sorted({s.strip().lower() for s in rows if s and s.strip()})

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
