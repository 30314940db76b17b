"""Case lists and saved views (``casestore.work.case_lists``) on SQLite and PostgreSQL: only
visible cases, filters, sorts, paging, and a person's own named views."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import users
from casestore.access import Principal, case_visible, case_visible_clause
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import Case
from casestore.work import case_lists
from casestore.work.case_lists import CaseFilter
from casestore.work.models import CaseWork

from .rows import case

ALICE = Principal(name="alice", role="agent", teams=("complaints",))
SUE = Principal(name="sue", role="supervisor")


def _refs(session: Session, who: Principal, **filters: str) -> list[str]:
    page = case_lists.list_cases(session, who, case_lists.parse_filter(filters), limit=200)
    return [row.ref for row in page.cases]


def test_the_sql_rule_is_the_policy_rule(session: Session) -> None:
    rows = [case(session, team=team, restricted=restricted)
            for team, restricted in itertools.product(("complaints", "claims", None), (False, True))]
    ids = [c.id for c in rows]
    for who in (ALICE, SUE, Principal(name="x", role="integration", teams=("claims",)),
                Principal(name="gone", role="admin", disabled=True), Principal(name="n", role="agent")):
        by_sql = set(session.scalars(select(Case.id).where(Case.id.in_(ids), case_visible_clause(who))))
        by_rule = {c.id for c in rows if case_visible(who, team=c.team, restricted=c.restricted)}
        assert by_sql == by_rule, who


def test_a_list_shows_only_what_the_viewer_may_see(session: Session) -> None:
    mine, theirs, open_to_all, hidden = (case(session), case(session, team="claims"), case(session, team=None),
                                         case(session, team=None, restricted=True))
    assert set(_refs(session, ALICE)) >= {mine.ref, open_to_all.ref}
    assert theirs.ref not in _refs(session, ALICE) and hidden.ref not in _refs(session, ALICE)
    assert {mine.ref, theirs.ref, open_to_all.ref, hidden.ref} <= set(_refs(session, SUE))
    assert _refs(session, ALICE, text=theirs.ref) == [], "a hidden case is not found by its reference either"


def test_filters_and_sorts(session: Session) -> None:
    calm, urgent, done, claimed = case(session), case(session, urgency=50), case(session), case(session, urgency=5)
    session.get_one(CaseWork, done.id).status = "closed"
    session.get_one(CaseWork, claimed.id).assignee = "alice"
    waiting = case(session)
    session.get_one(CaseWork, waiting.id).status = "awaiting_customer"
    session.flush()
    ours = {calm.ref, urgent.ref, done.ref, claimed.ref, waiting.ref}
    active = set(_refs(session, ALICE, status="active")) & ours
    assert active == ours - {done.ref}
    assert set(_refs(session, ALICE, status="closed")) & ours == {done.ref}
    assert set(_refs(session, ALICE, status="awaiting_customer")) & ours == {waiting.ref}
    assert _refs(session, ALICE, owner="me") == [claimed.ref]
    assert claimed.ref not in _refs(session, ALICE, owner="none")
    assert _refs(session, SUE, owner="alice") == [claimed.ref]
    by_urgency = [r for r in _refs(session, ALICE, sort="urgency") if r in ours]
    assert by_urgency[:2] == [urgent.ref, claimed.ref]
    oldest = [r for r in _refs(session, ALICE, sort="oldest") if r in ours]
    assert oldest == [calm.ref, urgent.ref, done.ref, claimed.ref, waiting.ref]
    assert _refs(session, ALICE, text=f"  {urgent.subject.upper()} ") == [urgent.ref]
    with pytest.raises(InvalidInput, match="no case status 'lost'"):
        _refs(session, ALICE, status="lost")
    with pytest.raises(InvalidInput, match="sort"):
        case_lists.parse_filter({"sort": "random"})
    with pytest.raises(InvalidInput):
        case_lists.parse_filter({"colour": "red"})


def test_paging_hands_out_every_case_once(session: Session) -> None:
    made = {case(session, team="paging").ref for _ in range(12)}
    flt = case_lists.parse_filter({"team": "paging"})
    seen: list[str] = []
    cursor = None
    while True:
        page = case_lists.list_cases(session, SUE, flt, cursor=cursor, limit=5)
        seen += [row.ref for row in page.cases]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(made) and len(seen) == 12
    with pytest.raises(InvalidInput, match="cursor"):
        case_lists.list_cases(session, SUE, flt, cursor="!!not-ours")


def test_most_urgent_first_pages_across_raised_and_calm_cases(session: Session) -> None:
    """The urgency sort reads raised cases and the rest in two runs; paging must join them seamlessly,
    in exactly the order one ``ORDER BY coalesce(urgency, 0) DESC, updated_at DESC, id DESC`` gives,
    with a case that has no work state among the calm ones."""
    made = [case(session, team="urgent-paging", urgency=u) for u in (0, 3, 0, 7, 3, 0, 1, 0, 0, 7, 0)]
    bare = Case(ref="T-BARE-URGENCY", case_type="complaint", status="open", subject="imported", team="urgent-paging")
    session.add(bare)
    session.flush()
    urgency = {c.ref: session.get_one(CaseWork, c.id).urgency for c in made} | {bare.ref: 0}
    expected = [c.ref for c in sorted([*made, bare], key=lambda c: (urgency[c.ref], c.updated_at, c.id),
                                      reverse=True)]
    flt = case_lists.parse_filter({"team": "urgent-paging", "sort": "urgency"})
    for size in (1, 2, 3, 5, 12, 50):
        seen: list[str] = []
        cursor = None
        while True:
            page = case_lists.list_cases(session, SUE, flt, cursor=cursor, limit=size)
            seen += [row.ref for row in page.cases]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected, size
    mine = made[1]
    session.get_one(CaseWork, mine.id).assignee = "alice"
    session.get_one(CaseWork, made[0].id).assignee = "alice"
    session.flush()
    assert _refs(session, SUE, owner="alice", team="urgent-paging", sort="urgency") == [mine.ref, made[0].ref]


def test_saved_views_belong_to_their_owner(session: Session) -> None:
    users.add_user(session, name="alice", role="agent", teams=["complaints"])
    users.add_user(session, name="bob", role="agent", teams=["claims"])
    flt = CaseFilter(status="active", owner="me", sort="urgency")
    view = case_lists.save_view(session, user_name="alice", name="  My   urgent ", flt=flt)
    assert view.name == "My urgent" and view.filters == {"status": "active", "owner": "me", "sort": "urgency"}
    assert case_lists.parse_filter(view.filters) == flt, "what was saved is what the list shows"
    with pytest.raises(Conflict, match="already have a view"):
        case_lists.save_view(session, user_name="alice", name="My urgent", flt=CaseFilter())
    replaced = case_lists.save_view(session, user_name="alice", name="My urgent", flt=CaseFilter(team="x"),
                                    replace=True)
    assert replaced.id == view.id and replaced.filters == {"team": "x"}
    case_lists.save_view(session, user_name="bob", name="My urgent", flt=CaseFilter())  # names are per person
    assert [v.name for v in case_lists.saved_views(session, user_name="bob")] == ["My urgent"]
    with pytest.raises(NotFound):
        case_lists.get_view(session, user_name="bob", view_id=view.id)
    with pytest.raises(NotFound):
        case_lists.delete_view(session, user_name="bob", view_id=view.id)
    case_lists.delete_view(session, user_name="alice", view_id=view.id)
    assert case_lists.saved_views(session, user_name="alice") == []
    with pytest.raises(InvalidInput, match="name"):
        case_lists.save_view(session, user_name="alice", name="   ", flt=CaseFilter())
