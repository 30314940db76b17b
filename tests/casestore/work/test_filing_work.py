"""Filing tells the work domain: a new case starts its type, a reply reaches the case's work, and an
item for a case closed too long ago is filed into a new linked case (both filing paths)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from casestore import cases, items
from casestore.filing import Filing, file_items
from casestore.models import utcnow
from casestore.work import engine
from casestore.work.actor import SYSTEM
from casestore.work.inbound import InboundWork
from tests.casestore.factories import decision, documents, new_item
from tests.casestore.work.engine_setup import CALS, REPLY_COMPLAINT, events, inbound_work, states, work


@pytest.fixture
def work_hooks(session: Session) -> InboundWork:
    return inbound_work(session)


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
def test_filing_starts_new_cases_and_records_replies(session: Session, work_hooks: InboundWork, batch: bool) -> None:
    new = items.NewCase(customer_id="C1", case_type="complaint", subject="new complaint")
    filings = [Filing(new_item("email:new"), documents(1), "new_case", None, new, "complaint", decision("new")),
               Filing(new_item("email:reply"), documents(1), "attached", "CM-1", None, "letter", decision())]
    if batch:
        results = file_items(session, filings=filings, actor="pipeline", work=work_hooks)
    else:
        results = [items.file_item(session, item=f.item, documents=f.documents, outcome=f.outcome,
                                   case_ref=f.case_ref, new_case=f.new_case, doc_type=f.doc_type,
                                   decision=f.decision, actor="pipeline", work=work_hooks) for f in filings]
    opened = cases.get_case(session, ref=results[0].case_ref or "")
    assert (work(session, opened).case_type, states(session, opened)) == ("complaint", {"assess": "queued"})
    legacy = cases.get_case(session, ref="CM-1")  # no work before: it starts, then the reply is recorded
    assert states(session, legacy) == {"assess": "queued", "review": "queued"}
    assert [e.item_id for e in events(session, legacy, "customer.replied")] == [filings[1].item.item_id]


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
def test_an_item_for_a_case_closed_too_long_ago_opens_a_linked_case(session: Session, work_hooks: InboundWork,
                                                                     batch: bool) -> None:
    old = cases.get_case(session, ref="CM-1")
    engine.start_case(session, case=old, case_type=REPLY_COMPLAINT, actor=SYSTEM, calendars=CALS)
    engine.close_case(session, ref="CM-1", code="resolved", actor=SYSTEM, calendars=CALS,
                      now=utcnow() - timedelta(days=3))
    filings = [Filing(new_item(f"email:late{i}"), documents(1), "attached", "CM-1", None, "letter", decision())
               for i in range(2)]
    if batch:
        results = file_items(session, filings=filings, actor="pipeline", work=work_hooks)
    else:
        results = [items.file_item(session, item=f.item, documents=f.documents, outcome=f.outcome,
                                   case_ref=f.case_ref, new_case=f.new_case, doc_type=f.doc_type,
                                   decision=f.decision, actor="pipeline", work=work_hooks) for f in filings]
    assert [r.outcome for r in results] == ["new_case", "attached"]
    assert results[0].case_ref == results[1].case_ref != "CM-1"  # the second goes to the linked case too
    linked = cases.get_case(session, ref=results[0].case_ref or "")
    assert (linked.team, linked.customer and linked.customer.customer_id) == ("complaints", "C1")
    assert work(session, old).status == "closed"
    assert [e.details for e in events(session, old, "case.linked")] == [{"to": linked.ref}]
    filed = {e.item_id: e.details for e in events(session, linked, "item.filed")}
    assert filed[filings[0].item.item_id]["linked_from"] == "CM-1"


def test_the_batch_names_the_cases_whose_status_changed(session: Session, work_hooks: InboundWork) -> None:
    case = cases.get_case(session, ref="CM-1")
    engine.start_case(session, case=case, case_type=REPLY_COMPLAINT, actor=SYSTEM, calendars=CALS)
    engine.set_status(session, ref="CM-1", status="awaiting_customer", actor=SYSTEM, calendars=CALS)
    assert case.status == "pending"
    filings = [Filing(new_item("email:answer"), documents(1), "attached", "CM-1", None, "letter", decision())]
    file_items(session, filings=filings, actor="pipeline", work=work_hooks)
    assert (case.status, work(session, case).status) == ("open", "in_progress")
    assert work_hooks.status_changed() == ["CM-1"]  # its indexed documents must say open again
    assert work_hooks.status_changed() == []
