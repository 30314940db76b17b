"""MemoLookup asks the store each question once per batch, and answers the same as the store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from casestore import cases, customers
from casestore.lookup import StoreLookup
from classify.lookup import MemoLookup


def test_memo_answers_like_the_store_with_fewer_queries(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com",
                              postcode="AB1 2CD")
    cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="complaint", opened_at=None)
    statements: list[str] = []
    engine = session.get_bind()

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        store = StoreLookup(session)
        memo = MemoLookup(store)
        for _ in range(3):
            assert [c.customer_id for c in memo.find_customers(email="jane@example.com")] == ["C1"]
            assert [c.customer_id for c in memo.find_customers(name="Doe")] == ["C1"]
            case = memo.case_by_ref("CM-2025-000001")
            assert case is not None and case.customer_id == "C1"
            assert memo.case_by_ref("CM-0000-000000") is None
            assert [c.ref for c in memo.open_cases("C1")] == ["CM-2025-000001"]
        asked_once = len(statements)
        statements.clear()
        for _ in range(3):
            store.find_customers(email="jane@example.com")
            store.find_customers(name="Doe")
            store.case_by_ref("CM-2025-000001")
            store.case_by_ref("CM-0000-000000")
            store.open_cases("C1")
        assert len(statements) >= 3 * asked_once > 0
    finally:
        event.remove(engine, "before_cursor_execute", count)
