"""MemoLookup asks the store each question once per batch, and answers the same as the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from casestore import cases, customers
from casestore.lookup import StoreLookup
from classify.lookup import MemoLookup


@contextmanager
def _statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements sent on the session's connection while the block runs."""
    statements: list[str] = []
    engine = session.get_bind()

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_memo_answers_like_the_store_with_fewer_queries(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com",
                              postcode="AB1 2CD")
    cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="complaint", opened_at=None)
    with _statements(session) as statements:
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


def test_prefetch_asks_a_batch_in_one_query_each_and_answers_like_the_store(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    customers.upsert_customer(session, customer_id="C2", name="Joe Bloggs", email="joe@example.com")
    for n, who in ((1, "C1"), (2, "C2"), (3, "C1")):
        cases.upsert_case(session, ref=f"CM-2025-00000{n}", customer_id=who, case_type="complaint", opened_at=None)
    store = StoreLookup(session)
    refs = ["CM-2025-000001", " CM-2025-000002 ", "CM-2025-000003", "CM-0000-000000", "CM-2025-000001"]
    emails = ["JANE@example.com", "joe@example.com", "nobody@example.com", " ", "jane@example.com"]
    memo = MemoLookup(store)
    with _statements(session) as statements:
        memo.prefetch(case_refs=refs, emails=emails)
        assert len(statements) == 2  # one for the references, one for the addresses
        for ref in refs:
            assert memo.case_by_ref(ref) == store.case_by_ref(ref)
        for email in emails:
            assert list(memo.find_customers(email=email)) == list(store.find_customers(email=email))
        assert len(statements) == 2 + len(refs) + 4  # the store's own answers; the memo asked nothing more
        memo.prefetch(case_refs=refs[:2], emails=emails[:2])  # known already: not asked again
        assert len(statements) == 2 + len(refs) + 4


def test_prefetch_is_a_no_op_for_a_lookup_without_batch_questions() -> None:
    class Plain:
        def case_by_ref(self, ref: str) -> None:
            raise AssertionError("prefetch must not ask one by one")

    memo = MemoLookup(Plain())  # type: ignore[arg-type]
    memo.prefetch(case_refs=["CM-2025-000001"], emails=["a@example.com"])


def test_matcher_decides_the_same_with_a_prefetch(session: Session) -> None:
    from classify.match_types import MatchInput
    from classify.matcher import Matcher

    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="complaint", opened_at=None)
    items = [
        MatchInput(channel="email", subject="Re: CM-2025-000001", text="Still waiting. Jane",
                   sender_email="jane@example.com"),
        MatchInput(channel="email", subject="hello", text="write to joe@example.com about CM-2025-000009",
                   sender_email="stranger@example.com"),
        MatchInput(channel="email", subject="Automatic reply: away", text="back Monday", is_auto_reply=True),
    ]
    matcher = Matcher()
    alone = [matcher.decide(item, MemoLookup(StoreLookup(session))) for item in items]
    memo = MemoLookup(StoreLookup(session))
    found = matcher.prefetch(items, memo)
    assert found[2] is None and found[0] is not None
    together = [matcher.decide(item, memo, entities) for item, entities in zip(items, found, strict=True)]
    same = [(r.outcome, r.case_ref, r.evidence) for r in alone]
    assert [(r.outcome, r.case_ref, r.evidence) for r in together] == same
    assert alone[0].outcome == "attached" and alone[0].case_ref == "CM-2025-000001"


def test_prefetch_of_surnames_answers_like_the_store_in_one_query(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    customers.upsert_customer(session, customer_id="C2", name="John Doe-Smith")
    for n in range(53):  # more than the name look-up's limit: the same first 50, by id
        customers.upsert_customer(session, customer_id=f"S{n:02d}", name=f"Pat{n} Smith")
    store = StoreLookup(session)
    names = ["Doe", "DOE", "Smith", "Doe-Smith", "x", "two words", " ", "Nobody", "Doe"]
    memo = MemoLookup(store)
    with _statements(session) as statements:
        memo.prefetch(names=names)
        assert len(statements) == 1
        for name in names:
            assert list(memo.find_customers(name=name)) == list(store.find_customers(name=name)), name
        assert len(statements) == 1 + len(names) - 3  # the store's own answers (none for x, two words, " ")
    assert len(store.find_customers(name="Smith")) == 50


def test_matcher_decides_the_same_with_a_prefetch_of_names(session: Session) -> None:
    from classify.match_types import MatchInput
    from classify.matcher import Matcher

    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", postcode="AB1 2CD")
    customers.upsert_customer(session, customer_id="C2", name="Joe Bloggs", address="1 High Street, Leeds")
    cases.upsert_case(session, ref="CM-2025-000001", customer_id="C1", case_type="complaint", opened_at=None)
    items = [
        MatchInput(channel="email", subject="my parcel",
                   text="Dear team,\nstill late. AB1 2CD\nKind regards,\nJane Doe",
                   sender_email="jd@example.net", sender_name="Jane Doe"),
        MatchInput(channel="email", subject="hello", text="I live at 1 High Street, Leeds.\nThanks,\nJoe Bloggs",
                   sender_email="other@example.net", sender_name="J Bloggs"),
        MatchInput(channel="email", subject="hi", text="nothing here", sender_email="x@example.net",
                   sender_name="Nobody Known"),
    ]
    matcher = Matcher()
    alone = [matcher.decide(item, MemoLookup(StoreLookup(session))) for item in items]
    memo = MemoLookup(StoreLookup(session))
    found = matcher.prefetch(items, memo)
    together = [matcher.decide(item, memo, entities) for item, entities in zip(items, found, strict=True)]
    assert [(r.outcome, r.case_ref, r.evidence) for r in together] == [
        (r.outcome, r.case_ref, r.evidence) for r in alone]
    assert "name_postcode" in str(alone[0].evidence)
