"""The notification feed: an escalation's notify_role reaches the people of that role (and above it)
who may see the case and work its team, nobody else; read marks per person (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from casestore import users
from casestore.errors import InvalidInput
from casestore.work import notifications
from casestore.work.actor import Actor
from casestore.work.clock_loop import sweep

from .rows import AGENT_ACTIONS, T0, case, clock, definition, store_definition

ESCALATIONS: list[dict[str, Any]] = [
    {"clock": "first_response", "on": "warn", "actions": [{"raise_urgency": 10, "notify_role": "supervisor"}]},
    {"clock": "first_response", "on": "breach", "actions": [{"notify_role": "agent"}]},
]
WARN, DUE = T0 + timedelta(hours=3), T0 + timedelta(hours=4)

SUE = Actor(name="sue", role="supervisor", teams=("complaints",))       # supervises the case's team
SAM = Actor(name="sam", role="supervisor", teams=("claims",))           # supervises another team
HEAD = Actor(name="head", role="supervisor")                            # no team: every team
ALICE = Actor(name="alice", role="agent", teams=("complaints",))
EVE = Actor(name="eve", role="agent", teams=("claims",))
ADA = Actor(name="ada", role="admin", teams=("complaints",))


@pytest.fixture
def s(session: Session) -> Session:
    value = definition(escalations=ESCALATIONS)
    value["roles"]["admin"] = [*value["roles"]["supervisor"], "manage_definitions"]
    store_definition(session, value)
    for who in (SUE, SAM, HEAD, ALICE, EVE, ADA):
        users.add_user(session, name=who.name, role=who.role, teams=list(who.teams))
    return session


def refs(session: Session, who: Actor) -> list[tuple[str, str, str | None]]:
    return [(n.case_ref, n.role, n.event) for n in notifications.feed(session, who).notices]


def test_a_supervisor_notice_reaches_the_cases_teams_supervisors_and_those_above(s: Session) -> None:
    mine, theirs = case(s), case(s, team="claims")
    clock(s, mine)
    clock(s, theirs)
    sweep(s, now=WARN)
    assert refs(s, SUE) == [(mine.ref, "supervisor", "warn")]
    assert refs(s, SAM) == [(theirs.ref, "supervisor", "warn")]   # sees every case, but not told of mine
    assert {r for r, _, _ in refs(s, HEAD)} == {mine.ref, theirs.ref}
    assert refs(s, ADA) == [(mine.ref, "supervisor", "warn")]     # an admin's actions cover a supervisor's
    assert refs(s, ALICE) == [] and refs(s, EVE) == []             # addressed to supervisors, not agents
    feed = notifications.feed(s, SUE)
    notice = feed.notices[0]
    assert notice.unread and feed.unread == 1 and notice.case_type == "complaint"
    assert notice.message == f"{mine.ref}: clock first_response is at risk"


def test_an_agent_notice_reaches_agents_of_the_team_and_the_roles_above(s: Session) -> None:
    mine = case(s)
    clock(s, mine)
    sweep(s, now=DUE)  # warn and breach in one sweep
    assert refs(s, ALICE) == [(mine.ref, "agent", "breach")]
    assert refs(s, EVE) == []                                      # may not see the case at all
    assert [e for _, _, e in refs(s, SUE)] == ["breach", "warn"]   # newest first; a supervisor covers agents


def test_a_notice_of_a_case_the_user_may_not_see_never_shows(s: Session) -> None:
    hidden = case(s, team=None, restricted=True)
    clock(s, hidden)
    sweep(s, now=DUE)
    assert refs(s, ALICE) == []  # restricted, no team: agents may not see it
    assert len(refs(s, HEAD)) == 2
    assert refs(s, Actor(name="head", role="supervisor", disabled=True)) == []


def test_marking_seen_keeps_the_mark_per_user_and_never_moves_it_back(s: Session) -> None:
    first, second = case(s), case(s)
    clock(s, first)
    sweep(s, now=WARN)
    clock(s, second, start=WARN)
    mark = notifications.mark_seen(s, SUE)
    assert (mark.unread, mark.seen_up_to > 0) == (0, True)
    assert notifications.feed(s, ADA).unread == 1                  # ada's mark is her own
    sweep(s, now=WARN + timedelta(hours=3))  # second's warning, and first's breach (to agents: sue covers them)
    feed = notifications.feed(s, SUE)
    assert sorted((n.case_ref, n.event, n.unread) for n in feed.notices) == [
        (first.ref, "breach", True), (first.ref, "warn", False), (second.ref, "warn", True)]
    assert [n.id for n in feed.notices] == sorted((n.id for n in feed.notices), reverse=True)
    assert notifications.unread_count(s, SUE) == 2
    assert notifications.mark_seen(s, SUE, up_to=1).seen_up_to == mark.seen_up_to  # not back
    assert notifications.mark_seen(s, SUE, up_to=feed.notices[0].id).unread == 0
    with pytest.raises(InvalidInput):
        notifications.mark_seen(s, SUE, up_to=-1)


def test_the_feed_pages_by_id(s: Session) -> None:
    for _ in range(3):
        c = case(s)
        clock(s, c)
    sweep(s, now=WARN)
    page = notifications.feed(s, HEAD, limit=2)
    assert len(page.notices) == 2 and page.next_before == page.notices[-1].id
    rest = notifications.feed(s, HEAD, limit=2, before=page.next_before)
    assert len(rest.notices) == 1 and rest.next_before is None
    assert rest.notices[0].id < page.notices[-1].id


def test_roles_covered_follow_the_types_matrix() -> None:
    from casestore.work.definitions import CaseType

    ct = CaseType.model_validate({**definition(), "roles": {"agent": AGENT_ACTIONS, "supervisor": AGENT_ACTIONS,
                                                            "admin": [*AGENT_ACTIONS, "reassign"]}})
    assert notifications.covered_roles(ct, "admin") == {"admin", "agent", "supervisor"}
    assert notifications.covered_roles(ct, "supervisor") == {"supervisor"}  # equal actions: not above
    assert notifications.covered_roles(ct, "auditor") == {"auditor"}
