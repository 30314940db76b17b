from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore import cases, notes
from casestore.customers import upsert_customer
from casestore.errors import InvalidInput, NotFound
from casestore.items import NewCase, file_item
from casestore.models import AuditEvent, Case, RefSequence
from casestore.refs import format_ref, is_valid_ref, parse_ref

from .factories import decision, documents, new_item


def _open(session: Session, customer_id: str | None = None) -> Case:
    return cases.open_case(session, customer_id=customer_id, case_type="complaint", subject="Boiler",
                           actor="classifier", reason="no matching case")


def test_open_case_allocates_unique_valid_refs_from_a_sequence(session: Session) -> None:
    opened = [_open(session) for _ in range(5)]
    refs = [c.ref for c in opened]
    year = datetime.now(UTC).year
    assert len(set(refs)) == 5 and all(is_valid_ref(r) for r in refs)
    assert [parse_ref(r) for r in refs] == [(year, n) for n in range(1, 6)]
    assert session.get(RefSequence, f"CW-{year}").next_value == 6  # type: ignore[union-attr]
    assert all(c.status == "open" and not c.legacy and c.opened_at.tzinfo is not None for c in opened)
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.case_id == opened[0].id)).all()
    assert actions == ["case.opened"]


def test_open_case_for_a_customer_and_for_nobody(session: Session) -> None:
    upsert_customer(session, customer_id="C-1", name="Jane")
    case = _open(session, "C-1")
    assert case.customer is not None and case.customer.customer_id == "C-1"
    assert _open(session, None).customer is None
    with pytest.raises(InvalidInput, match="import customers first"):
        _open(session, "C-404")


def test_upsert_case_keeps_legacy_ref_and_updates_on_reimport(session: Session) -> None:
    upsert_customer(session, customer_id="C-1", name="Jane")
    upsert_customer(session, customer_id="C-2", name="John")
    opened = datetime(2019, 5, 4, 12, 0, tzinfo=UTC)
    case, created = cases.upsert_case(session, ref="OLD/2019/0042", customer_id="C-1", case_type="billing",
                                      status="Pending", opened_at=opened, subject="Refund", team="billing")
    assert created and case.legacy and case.ref == "OLD/2019/0042" and case.status == "pending"
    assert case.opened_at == opened and case.team == "billing"

    again, created = cases.upsert_case(session, ref="OLD/2019/0042", customer_id="C-2", case_type="billing",
                                       status="closed", opened_at=None, subject="Refund")
    assert not created and again.id == case.id
    assert again.status == "closed" and again.customer is not None and again.customer.customer_id == "C-2"
    assert again.opened_at == opened and again.team == "billing"  # None leaves them alone
    events = session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["case.imported", "case.updated"]
    assert events[1].details["changed"]["customer_id"] == ["C-1", "C-2"]
    assert events[1].details["changed"]["status"] == ["pending", "closed"]

    cases.upsert_case(session, ref="OLD/2019/0042", customer_id="C-2", case_type="billing", status="closed",
                      opened_at=None, subject="Refund")
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.case_id == case.id)) == 2


def test_upsert_case_rejects_unknown_customer_and_bad_status(session: Session) -> None:
    with pytest.raises(InvalidInput, match="import customers first"):
        cases.upsert_case(session, ref="L-1", customer_id="C-404", case_type="x", opened_at=None)
    with pytest.raises(InvalidInput, match="open, pending, closed"):
        cases.upsert_case(session, ref="L-1", customer_id=None, case_type="x", status="done", opened_at=None)


def test_imported_own_format_refs_are_never_allocated_again(session: Session) -> None:
    year = datetime.now(UTC).year
    for n in (1, 3):
        cases.upsert_case(session, ref=format_ref(year, n), customer_id=None, case_type="x", opened_at=None)
    assert parse_ref(_open(session).ref) == (year, 4)


def test_get_case_not_found(session: Session) -> None:
    with pytest.raises(NotFound, match="no case with reference"):
        cases.get_case(session, ref="CW-2025-999999-A")


def test_add_note(session: Session) -> None:
    case = _open(session)
    note = notes.add_note(session, ref=case.ref, author="agent1", body="  Called the customer.  ")
    assert note.body == "Called the customer." and note.case_id == case.id
    with pytest.raises(InvalidInput):
        notes.add_note(session, ref=case.ref, author="agent1", body="   ")
    with pytest.raises(NotFound):
        notes.add_note(session, ref="nope", author="agent1", body="x")


def test_case_folder(session: Session) -> None:
    upsert_customer(session, customer_id="C-1", name="Jane", email="jane@example.com", postcode="SW1A 1AA")
    late = new_item(received_at=datetime(2025, 3, 2, tzinfo=UTC))
    early = new_item(received_at=datetime(2025, 3, 1, tzinfo=UTC))
    first = file_item(session, item=late, documents=documents(2), outcome="new_case", case_ref=None,
                      new_case=NewCase(customer_id="C-1", case_type="complaint", subject="Boiler", team="repairs"),
                      doc_type="complaint_letter", decision=decision("new complaint"), actor="pipeline")
    assert first.case_ref is not None
    file_item(session, item=early, documents=documents(1), outcome="attached", case_ref=first.case_ref,
              new_case=None, doc_type="invoice", decision=decision(), actor="pipeline")
    notes.add_note(session, ref=first.case_ref, author="agent1", body="Engineer booked")

    folder = cases.case_folder(session, ref=first.case_ref)
    json.dumps(folder)  # JSON-able as is
    assert folder["ref"] == first.case_ref and folder["status"] == "open" and folder["team"] == "repairs"
    assert folder["customer"] == {"customer_id": "C-1", "name": "Jane", "email": "jane@example.com", "phone": None,
                                  "address": None, "postcode": "SW1A 1AA", "account_number": None}
    docs = folder["documents"]
    assert [(d["item_id"], d["part_index"]) for d in docs] == [
        (early.item_id, 0), (late.item_id, 0), (late.item_id, 1)]  # in time order
    assert docs[0]["doc_type"] == "invoice" and docs[0]["channel"] == "email"
    assert docs[1]["text_chars"] == len("part 0 text about the boiler")
    assert docs[0]["received_at"].startswith("2025-03-01T00:00:00")
    assert [n["body"] for n in folder["notes"]] == ["Engineer booked"]
    assert [a["action"] for a in folder["audit"]] == ["case.opened", "item.filed", "item.filed", "note.added"]
    assert folder["audit"][1]["reason"] == "new complaint" and folder["audit"][1]["item_id"] == late.item_id
    assert folder["audit"][1]["details"]["evidence"] == {"ref": "subject"}
