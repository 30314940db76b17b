"""Customers from the CRM, upserted by their CRM id."""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import Customer, CustomerNameWord, name_words, utcnow
from casestore.validation import (
    normalise_email,
    normalise_phone,
    normalise_postcode,
    optional,
    required,
)

log = logging.getLogger(__name__)


def get_customer(session: Session, *, customer_id: str) -> Customer:
    """The customer with this CRM id; NotFound otherwise."""
    customer = find_customer(session, customer_id=customer_id)
    if customer is None:
        raise NotFound(f"no customer with id {customer_id!r}; import customers first (casework import customers)")
    return customer


def find_customer(session: Session, *, customer_id: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.customer_id == customer_id.strip()))


def require_customer(session: Session, *, customer_id: str | None) -> Customer | None:
    """None for None; the customer for a known CRM id; InvalidInput for an unknown one."""
    if customer_id is None or not customer_id.strip():
        return None
    customer = find_customer(session, customer_id=customer_id)
    if customer is None:
        raise InvalidInput(
            f"unknown customer {customer_id.strip()!r}: import customers first "
            "(casework import customers FILE), or leave customer_id empty"
        )
    return customer


def upsert_customer(
    session: Session,
    *,
    customer_id: str,
    name: str,
    email: str | None = None,
    phone: str | None = None,
    address: str | None = None,
    postcode: str | None = None,
    account_number: str | None = None,
    actor: str = "import",
) -> tuple[Customer, bool]:
    """Create or update the customer with this CRM id; the bool says whether it was created.

    The values given are authoritative: a field passed as None (or blank) is cleared, as a
    CRM export row is a full snapshot of the customer.  InvalidInput for a blank id or name
    or an email that is not an address.
    """
    cid = required("customer_id", customer_id, max_len=100)
    phone_given = optional("phone", phone, max_len=64)
    postcode_given = optional("postcode", postcode, max_len=32)
    values = {
        "name": required("name", name, max_len=300),
        "email": normalise_email(email),
        "phone": phone_given,
        "phone_normalised": normalise_phone(phone_given),
        "address": optional("address", address, max_len=2000),
        "postcode": postcode_given,
        "postcode_normalised": normalise_postcode(postcode_given),
        "account_number": optional("account_number", account_number, max_len=64),
    }
    customer = find_customer(session, customer_id=cid)
    if customer is None:
        now = utcnow()
        customer = Customer(customer_id=cid, created_at=now, updated_at=now, **values)
        try:
            with session.begin_nested():
                session.add(customer)
        except IntegrityError as e:  # inserted concurrently by another transaction
            customer = find_customer(session, customer_id=cid)
            if customer is None:
                raise Conflict(f"customer {cid!r} could not be stored ({e.orig}); retry the import") from e
        else:
            _index_name(session, customer, created=True)
            log.debug("customer %s created by %s", cid, actor)
            return customer, True
    changed = [field for field, value in values.items() if getattr(customer, field) != value]
    if changed:
        for field in changed:
            setattr(customer, field, values[field])
        customer.updated_at = utcnow()
        if "name" in changed:
            session.flush()
            _index_name(session, customer, created=False)
        log.debug("customer %s updated by %s: %s", cid, actor, ", ".join(changed))
    return customer, False


def _index_name(session: Session, customer: Customer, *, created: bool) -> None:
    """Keep ``customer_name_words`` in step with the customer's (flushed) name."""
    if not created:
        session.execute(delete(CustomerNameWord).where(CustomerNameWord.customer_id == customer.id))
    words = name_words(customer.name)
    if words:
        session.execute(insert(CustomerNameWord), [{"word": w, "customer_id": customer.id} for w in words])


PROSPECT_PREFIX = "P-"


def prospect_customer(
    session: Session,
    *,
    key: str,
    name: str | None,
    email: str | None = None,
    phone: str | None = None,
    address: str | None = None,
    postcode: str | None = None,
    actor: str = "pipeline",
) -> tuple[Customer, bool]:
    """The customer for someone the CRM does not know, who wrote to us; the bool says whether it
    was created.

    An existing customer with the same email address, else phone number, else name and postcode
    is theirs (kept for an earlier item of theirs, or imported since); otherwise a *prospect*
    customer is created from what the item said, with CRM id ``P-`` and ``key`` (the item id's
    first 12 hex digits), so the next item from them is matched to them.  A CRM import that
    brings them later merges the prospect into the CRM's customer, or links the two for a
    person to decide (``casestore.prospects``).
    """
    try:
        clean_email = normalise_email(email)
    except InvalidInput:
        clean_email = None
    clean_phone = normalise_phone(optional("phone", phone, max_len=64))
    clean_postcode = normalise_postcode(postcode)
    found = None
    if clean_email:
        found = session.scalar(select(Customer).where(Customer.email == clean_email).order_by(Customer.id).limit(1))
    if found is None and clean_phone:
        found = session.scalar(select(Customer).where(Customer.phone_normalised == clean_phone)
                               .order_by(Customer.id).limit(1))
    if found is None and name and clean_postcode:
        found = session.scalar(select(Customer).where(Customer.postcode_normalised == clean_postcode,
                                                      func.lower(Customer.name) == name.strip().lower())
                               .order_by(Customer.id).limit(1))
    if found is not None:
        return found, False
    shown = (name or "").strip() or clean_email or (phone or "").strip() or "(writer not named)"
    return upsert_customer(session, customer_id=f"{PROSPECT_PREFIX}{key.replace('-', '')[:12]}", name=shown[:300],
                           email=clean_email, phone=phone, address=address, postcode=postcode, actor=actor)
