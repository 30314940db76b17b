"""The batch filing path gives the same result as filing one by one, in one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore import cases, customers, items
from casestore.errors import NotFound
from casestore.filing import Filing, file_items
from casestore.models import AuditEvent, Document, Item
from tests.casestore.factories import decision, documents, new_item


def seed(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="complaint", opened_at=None)


def test_batch_files_new_items_skips_duplicates_and_opens_cases(session: Session) -> None:
    seed(session)
    earlier = new_item("email:earlier")
    items.file_item(session, item=earlier, documents=documents(1), outcome="attached", case_ref="CM-2025-000001",
                    new_case=None, doc_type="complaint", decision=decision(), actor="test")
    a, b = new_item("email:a"), new_item("email:b")
    filings = [
        Filing(earlier, documents(1), "attached", "CM-2025-000001", None, "complaint", decision()),
        Filing(a, documents(2), "attached", "CM-2025-000001", None, "complaint", decision()),
        Filing(a, documents(2), "attached", "CM-2025-000001", None, "complaint", decision()),  # twice in a batch
        Filing(b, documents(1), "new_case", None, items.NewCase(customer_id="C1", case_type="claim",
                                                                 subject="new claim"), "claim", decision("new")),
        Filing(new_item("email:c"), documents(1), "triage", None, None, "general_enquiry", decision("unsure")),
    ]
    results = file_items(session, filings=filings, actor="test")
    assert [r.duplicate for r in results] == [True, False, True, False, False]
    assert results[1].case_ref == "CM-2025-000001" and results[2].item_id == a.item_id
    assert results[3].case_ref and results[3].case_ref.startswith("CW-")
    assert results[4].case_ref is None and results[4].outcome == "triage"
    assert session.scalar(select(func.count()).select_from(Item)) == 4
    assert session.scalar(select(func.count()).select_from(Document)) == 1 + 2 + 1 + 1
    filed_events = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "item.filed"))
    assert filed_events == 4
    folder = cases.case_folder(session, ref="CM-2025-000001")
    assert {d["item_id"] for d in folder["documents"]} == {earlier.item_id, a.item_id}
    assert items.outcomes(session, item_ids=[b.item_id])[b.item_id]["case_ref"] == results[3].case_ref


def test_batch_with_an_unknown_case_raises_and_writes_nothing(session: Session) -> None:
    seed(session)
    filings = [
        Filing(new_item("email:ok"), documents(1), "attached", "CM-2025-000001", None, "complaint", decision()),
        Filing(new_item("email:bad"), documents(1), "attached", "CM-9999-999999", None, "complaint", decision()),
    ]
    with pytest.raises(NotFound, match="CM-9999-999999"):
        file_items(session, filings=filings, actor="test")
    assert session.scalar(select(func.count()).select_from(Item)) == 0
