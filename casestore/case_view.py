"""What the case page shows above its timeline: the case, its customer, the customer's other cases.

Who may see which case is decided by the caller with the one access rule (``can_see`` here is
that rule, passed in), so this module never widens or narrows it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.models import Case, Customer, Document, Item, Note

MAX_OTHER_CASES = 50


class CustomerPanel(BaseModel):
    customer_id: str
    name: str
    email: str | None
    phone: str | None
    address: str | None
    postcode: str | None
    account_number: str | None
    updated_at: datetime


class CaseSummary(BaseModel):
    ref: str
    case_type: str
    status: str
    subject: str
    team: str | None
    opened_at: datetime
    updated_at: datetime


class CaseHeader(CaseSummary):
    restricted: bool
    legacy: bool
    customer: CustomerPanel | None
    documents: int
    notes: int


def summary(case: Case) -> CaseSummary:
    return CaseSummary(ref=case.ref, case_type=case.case_type, status=case.status, subject=case.subject,
                       team=case.team, opened_at=case.opened_at, updated_at=case.updated_at)


def customer_panel(customer: Customer | None) -> CustomerPanel | None:
    if customer is None:
        return None
    return CustomerPanel(customer_id=customer.customer_id, name=customer.name, email=customer.email,
                         phone=customer.phone, address=customer.address, postcode=customer.postcode,
                         account_number=customer.account_number, updated_at=customer.updated_at)


def case_header(session: Session, *, case: Case) -> CaseHeader:
    documents = session.scalar(select(func.count()).select_from(Document).where(Document.case_id == case.id))
    notes = session.scalar(select(func.count()).select_from(Note).where(Note.case_id == case.id))
    return CaseHeader(**summary(case).model_dump(), restricted=case.restricted, legacy=case.legacy,
                      customer=customer_panel(case.customer), documents=int(documents or 0), notes=int(notes or 0))


def other_cases(session: Session, *, case: Case, can_see: Callable[[Case], bool]) -> list[CaseSummary]:
    """The customer's other cases that ``can_see`` allows, newest first (at most MAX_OTHER_CASES)."""
    if case.customer_id is None:
        return []
    rows = session.scalars(select(Case).where(Case.customer_id == case.customer_id, Case.id != case.id)
                           .order_by(Case.opened_at.desc(), Case.id.desc()).limit(MAX_OTHER_CASES * 4))
    return [summary(c) for c in rows if can_see(c)][:MAX_OTHER_CASES]


def item_case(session: Session, *, item_id: str) -> Case | None:
    """The case an item is filed in (None in triage, noise, or unknown)."""
    return session.scalar(select(Case).join(Item, Item.case_id == Case.id).where(Item.item_id == item_id))
