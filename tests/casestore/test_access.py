"""The one access policy (casestore.access) on the real store, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from casestore import access, cases, customers, users
from casestore.access import OPERATOR, Principal
from casestore.errors import NotFound
from casestore.filing import Filing, confine_to_uploaders
from casestore.items import NewCase, file_item
from casestore.models import Case, Item
from casestore.triage import resolve_triage, triage_queue
from tests.casestore.factories import documents, new_item

ANN = Principal(name="ann", role="agent", teams=("complaints",))  # team A
BEN = Principal(name="ben", role="agent", teams=("claims",))  # team B
SUE = Principal(name="sue", role="supervisor")


@pytest.fixture
def store(session: Session) -> Session:
    """Jane: complaints only.  Sam: claims only.  Kim: a case of each.  Lou: no case yet."""
    for cid, name in (("C-JANE", "Jane Doe"), ("C-SAM", "Sam Poe"), ("C-KIM", "Kim Roe"), ("C-LOU", "Lou Moe")):
        customers.upsert_customer(session, customer_id=cid, name=name)
    for ref, cid, team in (("A-1", "C-JANE", "complaints"), ("B-1", "C-SAM", "claims"),
                           ("A-2", "C-KIM", "complaints"), ("B-2", "C-KIM", "claims")):
        cases.upsert_case(session, ref=ref, customer_id=cid, case_type="complaint", team=team)
    for p in (ANN, BEN, SUE):
        users.add_user(session, name=p.name, role=p.role, teams=p.teams)
    return session


def _triaged(session: Session, key: str, *, candidates: list[str], customer_id: str | None = None,
             team: str | None = None, **decision: Any) -> str:
    item = new_item(f"email:{key}", metadata={"team": team} if team else {})
    file_item(session, item=item, documents=documents(1), outcome="triage", case_ref=None, new_case=None,
              doc_type="letter", actor="pipeline",
              decision={"reason": "r", "candidates": candidates, "customer_id": customer_id, **decision})
    return item.item_id


def test_case_rule_reads_equal_writes() -> None:
    shared = Case(ref="S", case_type="x", team=None, restricted=False)
    restricted = Case(ref="R", case_type="x", team=None, restricted=True)
    mine = Case(ref="A", case_type="x", team="complaints", restricted=True)
    theirs = Case(ref="B", case_type="x", team="claims", restricted=False)
    assert [access.can_see_case(ANN, c) for c in (shared, restricted, mine, theirs)] == [True, False, True, False]
    assert [access.may_file_into(ANN, c) for c in (shared, restricted, mine, theirs)] == [True, False, True, False]
    assert all(access.can_see_case(p, c) for p in (SUE, OPERATOR) for c in (shared, restricted, theirs))
    off = Principal(name="x", role="admin", disabled=True)
    assert not any(access.can_see_case(off, c) for c in (shared, mine))
    robot = Principal(name="robot", role="integration", teams=("claims",))
    assert [access.may_file_into(robot, c) for c in (shared, mine, theirs)] == [True, False, True]


def test_teams_may_be_assigned_by_members_only() -> None:
    assert access.may_assign_team(ANN, None) and access.may_assign_team(ANN, "complaints")
    assert not access.may_assign_team(ANN, "claims")
    assert access.may_assign_team(SUE, "claims")


def test_customers_with_cases_only_in_other_teams_are_closed(store: Session) -> None:
    closed = access.customers_closed_to(store, ANN, ["C-JANE", "C-SAM", "C-KIM", "C-LOU", "C-NOBODY"])
    assert closed == {"C-SAM"}, "Sam's only case is claims; Kim has a complaints case too; Lou none yet"
    assert access.customers_closed_to(store, BEN, ["C-JANE", "C-SAM", "C-KIM"]) == {"C-JANE"}
    assert access.customers_closed_to(store, SUE, ["C-JANE", "C-SAM"]) == set()
    with pytest.raises(NotFound) as hidden:
        access.check_may_open_case_for(store, ANN, customer_id="C-SAM")
    with pytest.raises(NotFound) as missing:
        access.check_may_open_case_for(store, ANN, customer_id="C-NOBODY")
    assert str(hidden.value).replace("C-SAM", "X") == str(missing.value).replace("C-NOBODY", "X"), \
        "a hidden customer answers exactly like a missing one"


def test_triage_items_naming_another_teams_case_or_customer_are_hidden(store: Session) -> None:
    open_item = _triaged(store, "open", candidates=["A-1"])
    theirs = _triaged(store, "theirs", candidates=["A-1", "B-1"])
    their_customer = _triaged(store, "cust", candidates=[], customer_id="C-SAM")
    their_team = _triaged(store, "team", candidates=[], team="claims")
    unknown_ref = _triaged(store, "gone", candidates=["NO-SUCH-CASE"])
    legacy = _triaged(store, "legacy", candidates=[], evidence={"customers": [{"customer_id": "C-SAM", "score": 0.5}]})
    store.flush()
    # (the legacy item's decision was stored without customer_id: the best evidence customer counts)
    legacy_item = store.get(Item, legacy)
    assert legacy_item is not None
    legacy_item.decision = {k: v for k, v in legacy_item.decision.items() if k != "customer_id"}
    store.flush()

    ann = [q["item_id"] for q in triage_queue(store, viewer=ANN)]
    assert set(ann) == {open_item, unknown_ref}
    ben = [q["item_id"] for q in triage_queue(store, viewer=BEN)]
    assert set(ben) == {their_customer, their_team, unknown_ref, legacy}
    assert len(triage_queue(store, viewer=SUE)) == 6
    hidden = access.items_hidden_from(store, ANN, [open_item, theirs, their_customer, their_team])
    assert hidden == {theirs, their_customer, their_team}


def test_triage_queue_pages_count_only_visible_items(store: Session) -> None:
    for n in range(6):
        _triaged(store, f"p{n}", candidates=["B-1"] if n % 2 else ["A-1"])
    firsts = [q["item_id"] for q in triage_queue(store, viewer=ANN, limit=2)]
    rest = [q["item_id"] for q in triage_queue(store, viewer=ANN, limit=2, offset=2)]
    assert len(firsts) == 2 and len(rest) == 1 and not set(firsts) & set(rest)


def test_resolving_obeys_the_policy(store: Session) -> None:
    theirs = _triaged(store, "theirs", candidates=["B-1"])
    mine = _triaged(store, "mine", candidates=["A-1"])
    with pytest.raises(NotFound, match="not visible"):
        resolve_triage(store, item_id=theirs, action="noise", viewer=ANN, actor="ann", reason="")
    with pytest.raises(NotFound):
        resolve_triage(store, item_id=mine, action="attach", case_ref="B-1", viewer=ANN, actor="ann", reason="")
    with pytest.raises(NotFound, match="C-SAM"):  # opening a case would show ann Sam's record
        resolve_triage(store, item_id=mine, action="new_case", customer_id="C-SAM", viewer=ANN, actor="ann",
                       reason="")
    opened = resolve_triage(store, item_id=mine, action="new_case", customer_id="C-KIM", viewer=ANN, actor="ann",
                            reason="Kim has a complaints case")
    assert opened.outcome == "new_case"
    assert resolve_triage(store, item_id=theirs, action="attach", case_ref="B-1", viewer=BEN, actor="ben",
                          reason="").case_ref == "B-1"


def test_items_in_cases_follow_their_case_and_integrations_see_their_own(store: Session) -> None:
    filed = new_item("email:filed", source="api:robot")
    file_item(store, item=filed, documents=documents(1), outcome="attached", case_ref="B-1", new_case=None,
              doc_type="letter", decision={"reason": "r"}, actor="pipeline")
    other = new_item("email:other")
    file_item(store, item=other, documents=documents(1), outcome="noise", case_ref=None, new_case=None,
              doc_type="letter", decision={"reason": "r"}, actor="pipeline")
    robot_b = Principal(name="robot", role="integration", teams=("claims",))
    robot_a = Principal(name="robot", role="integration", teams=("complaints",))
    ids = [filed.item_id, other.item_id]
    assert access.items_hidden_from(store, ANN, ids) == {filed.item_id}
    assert access.items_hidden_from(store, BEN, ids) == set()
    assert access.items_hidden_from(store, robot_b, ids) == {other.item_id}, "not its upload"
    assert access.items_hidden_from(store, robot_a, ids) == set(ids), "its upload, but in a case it cannot see"
    assert access.item_visible(store, ANN, item_id=other.item_id)
    assert not access.item_visible(store, ANN, item_id=filed.item_id)


def _filing(key: str, outcome: str, *, source: str, case_ref: str | None = None,
            new_case: NewCase | None = None) -> Filing:
    return Filing(item=new_item(key, source=source), documents=documents(1), outcome=outcome, case_ref=case_ref,
                  new_case=new_case, doc_type="letter", decision={"reason": "matched", "candidates": []})


def test_uploads_are_filed_only_where_their_uploader_may_file(store: Session) -> None:
    filings = [
        _filing("email:1", "attached", source="api:ann", case_ref="B-1"),
        _filing("email:2", "attached", source="api:ann", case_ref="A-1"),
        _filing("email:3", "new_case", source="api:ann", new_case=NewCase("C-SAM", "complaint", "s")),
        _filing("email:4", "new_case", source="api:ann", new_case=NewCase(None, "complaint", "s", team="claims")),
        _filing("email:5", "attached", source="api:nobody", case_ref="A-1"),
        _filing("email:6", "attached", source="imap:intake", case_ref="B-1"),
        _filing("email:7", "attached", source="api:ben", case_ref="B-1"),
    ]
    out = confine_to_uploaders(store, filings)
    assert [f.outcome for f in out] == ["triage", "attached", "triage", "triage", "triage", "attached", "attached"]
    assert out[0].decision["candidates"] == ["B-1"] and out[0].case_ref is None
    assert "may not file into case B-1" in out[0].decision["reason"]
    assert out[0].decision["confined"] == {"uploaded_by": "ann", "refused": "attached", "case_ref": "B-1"}
    assert out[2].new_case is None and "customer C-SAM" in out[2].decision["reason"]
    assert "team claims" in out[3].decision["reason"]
    assert "unknown or disabled" in out[4].decision["reason"]
