"""A person resolving a triage item drives the work as filing it would have (SQLite and PostgreSQL):
a new case starts its type's work, an item attached to a case is the customer's reply, and one
attached to a closed case reopens it within the reopen window or opens a new linked case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from casestore import access, cases, items, triage
from casestore.models import Item, utcnow
from casestore.work import engine
from casestore.work.actor import SYSTEM
from casestore.work.inbound import InboundWork
from casestore.work.models import CaseWork
from tests.casestore.factories import decision, documents, new_item
from tests.casestore.work.engine_setup import CALS, REPLY_COMPLAINT, events, inbound_work, states, work


@pytest.fixture
def hooks(session: Session) -> InboundWork:
    return inbound_work(session)


def _in_triage(session: Session, key: str, doc_type: str = "complaint") -> str:
    filed = items.file_item(session, item=new_item(key), documents=documents(1), outcome="triage", case_ref=None,
                            new_case=None, doc_type=doc_type, decision=decision("uncertain"), actor="pipeline")
    return filed.item_id


def _resolve(session: Session, hooks: InboundWork | None, item_id: str, action: str, **kw: str) -> triage.Resolution:
    return triage.resolve_triage(session, item_id=item_id, action=action, viewer=access.OPERATOR, actor="tina",
                                 reason="a person read it", work=hooks, **kw)


def test_a_new_case_from_triage_starts_its_work(session: Session, hooks: InboundWork) -> None:
    res = _resolve(session, hooks, _in_triage(session, "email:t1"), "new_case", customer_id="C1")
    case = cases.get_case(session, ref=res.case_ref or "")
    assert (work(session, case).case_type, states(session, case)) == ("complaint", {"assess": "queued"})
    chosen = _resolve(session, hooks, _in_triage(session, "email:t2"), "new_case", customer_id="C1",
                      case_type="general")  # the person's choice of type wins over the document type's mapping
    other = cases.get_case(session, ref=chosen.case_ref or "")
    assert (work(session, other).case_type, states(session, other)) == ("general", {"look": "queued"})


def test_an_item_attached_from_triage_is_the_customers_reply(session: Session, hooks: InboundWork) -> None:
    case = cases.get_case(session, ref="CM-1")
    engine.start_case(session, case=case, case_type=REPLY_COMPLAINT, actor=SYSTEM, calendars=CALS)
    item_id = _in_triage(session, "email:t3")
    res = _resolve(session, hooks, item_id, "attach", case_ref="CM-1")
    assert (res.outcome, res.case_ref) == ("attached", "CM-1")
    assert [e.item_id for e in events(session, case, "customer.replied")] == [item_id]
    assert states(session, case) == {"assess": "queued", "review": "queued"}


def test_an_item_attached_to_a_recently_closed_case_reopens_it(session: Session, hooks: InboundWork) -> None:
    case = cases.get_case(session, ref="CM-1")
    engine.start_case(session, case=case, case_type=REPLY_COMPLAINT, actor=SYSTEM, calendars=CALS)
    engine.close_case(session, ref="CM-1", code="resolved", actor=SYSTEM, calendars=CALS,
                      now=utcnow() - timedelta(hours=2))
    res = _resolve(session, hooks, _in_triage(session, "email:t4"), "attach", case_ref="CM-1")
    assert (res.outcome, res.case_ref) == ("attached", "CM-1")
    assert work(session, case).status != "closed" and case.status != "closed"
    assert len(events(session, case, "case.reopened")) == 1
    assert len(events(session, case, "customer.replied")) == 1


def test_an_item_attached_to_a_case_closed_long_ago_opens_a_linked_case(session: Session,
                                                                        hooks: InboundWork) -> None:
    old = cases.get_case(session, ref="CM-1")
    engine.start_case(session, case=old, case_type=REPLY_COMPLAINT, actor=SYSTEM, calendars=CALS)
    engine.close_case(session, ref="CM-1", code="resolved", actor=SYSTEM, calendars=CALS,
                      now=utcnow() - timedelta(days=3))
    item_id = _in_triage(session, "email:t5")
    res = _resolve(session, hooks, item_id, "attach", case_ref="CM-1")
    assert res.outcome == "new_case" and res.case_ref not in (None, "CM-1")
    linked = cases.get_case(session, ref=res.case_ref or "")
    assert work(session, old).status == "closed"
    assert (work(session, linked).case_type, states(session, linked)) == ("complaint", {"assess": "queued"})
    assert [e.details for e in events(session, old, "case.linked")] == [{"to": linked.ref}]
    item = session.get(Item, item_id)
    assert item is not None and (item.outcome, item.case_id) == ("new_case", linked.id)


def test_without_work_the_item_is_only_filed(session: Session, hooks: InboundWork) -> None:
    res = _resolve(session, None, _in_triage(session, "email:t6"), "new_case", customer_id="C1")
    case = cases.get_case(session, ref=res.case_ref or "")
    assert session.get(CaseWork, case.id) is None
