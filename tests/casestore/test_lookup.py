from __future__ import annotations

import inspect

from sqlalchemy.orm import Session

from casestore import cases
from casestore.customers import upsert_customer
from casestore.items import file_item
from casestore.lookup import CaseInfo, CustomerInfo, StoreLookup

from .factories import decision, documents, new_item


def _members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def test_store_lookup_has_the_shape_of_the_classify_protocol() -> None:
    from classify import lookup as proto  # tests may import classify; casestore itself does not

    for ours, theirs in ((StoreLookup, proto.CaseLookup), (CaseInfo, proto.CaseView),
                         (CustomerInfo, proto.CustomerView)):
        fields = set(getattr(ours, "__dataclass_fields__", {})) | _members(ours)
        assert _members(theirs) <= fields, (ours, theirs)
    for name in _members(proto.CaseLookup):
        ours_sig = inspect.signature(getattr(StoreLookup, name))
        theirs_sig = inspect.signature(getattr(proto.CaseLookup, name))
        assert [(p.name, p.kind, p.default) for p in ours_sig.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs_sig.parameters.values()], name


def _data(session: Session) -> StoreLookup:
    upsert_customer(session, customer_id="C-1", name="Jane", email="Jane@Example.com", phone="+44 20 7946 0000",
                    postcode="sw1a 1aa", account_number="ACC-1")
    upsert_customer(session, customer_id="C-2", name="John", email="john@example.com", account_number="ACC-2")
    cases.upsert_case(session, ref="LEG-1", customer_id="C-1", case_type="billing", status="closed", opened_at=None)
    cases.upsert_case(session, ref="LEG-2", customer_id="C-1", case_type="repairs", status="pending", opened_at=None)
    return StoreLookup(session)


def test_case_by_ref(session: Session) -> None:
    lookup = _data(session)
    assert lookup.case_by_ref("LEG-2") == CaseInfo("LEG-2", "C-1", "repairs", "pending")
    assert lookup.case_by_ref("leg-2") is None
    assert lookup.case_by_ref("nope") is None


def test_find_customers_by_any_identifier(session: Session) -> None:
    lookup = _data(session)
    assert [c.customer_id for c in lookup.find_customers(email="JANE@example.COM")] == ["C-1"]
    assert [c.customer_id for c in lookup.find_customers(phone="0044 (20) 7946-0000")] == ["C-1"]
    assert [c.customer_id for c in lookup.find_customers(account_number="ACC-2")] == ["C-2"]
    both = lookup.find_customers(email="jane@example.com", account_number="ACC-2")
    assert [c.customer_id for c in both] == ["C-1", "C-2"]
    assert lookup.find_customers() == [] and lookup.find_customers(email=" ") == []
    jane = lookup.find_customers(account_number="ACC-1")[0]
    assert jane == CustomerInfo("C-1", "Jane", "jane@example.com", "+44 20 7946 0000", "sw1a 1aa", "ACC-1")


def test_open_cases(session: Session) -> None:
    lookup = _data(session)
    assert [c.ref for c in lookup.open_cases("C-1")] == ["LEG-2"]
    assert lookup.open_cases("C-2") == []


def test_message_known(session: Session) -> None:
    lookup = _data(session)
    file_item(session, item=new_item(message_id="<m1@example.com>"), documents=documents(1), outcome="attached",
              case_ref="LEG-2", new_case=None, doc_type="letter", decision=decision(), actor="p")
    file_item(session, item=new_item(message_id="m2@example.com"), documents=documents(1), outcome="triage",
              case_ref=None, new_case=None, doc_type="letter", decision=decision(), actor="p")
    assert lookup.message_known("<m1@example.com>") == "LEG-2"
    assert lookup.message_known("m1@example.com") == "LEG-2"
    assert lookup.message_known("<m2@example.com>") is None  # known, but in no case
    assert lookup.message_known("<other@example.com>") is None
    assert lookup.message_known("  ") is None


def test_find_customers_by_a_word_of_the_name_follows_renames(session: Session) -> None:
    lookup = _data(session)
    upsert_customer(session, customer_id="C-3", name="Mary Anne O'Neill", postcode="LS1 4AP")
    upsert_customer(session, customer_id="C-4", name="Peter Neill")
    assert [c.customer_id for c in lookup.find_customers(name="NEILL")] == ["C-4"]  # whole words only
    assert [c.customer_id for c in lookup.find_customers(name="o'neill")] == ["C-3"]
    assert lookup.find_customers(name="Nei") == [] and lookup.find_customers(name="Mary Anne") == []
    upsert_customer(session, customer_id="C-3", name="Mary Anne Smith", postcode="LS1 4AP")  # married, renamed
    assert lookup.find_customers(name="o'neill") == []
    assert [c.customer_id for c in lookup.find_customers(name="smith")] == ["C-3"]
    assert [c.customer_id for c in lookup.find_customers(name="smith", account_number="ACC-2")] == ["C-2", "C-3"]
