"""A user never sees another team's (or a restricted case's) documents: hits, totals, facets,
snippets, "more like this" and cursors, on every adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casestore.search.port import CaseUpdate, IndexedDoc, SearchIndex, SearchQuery, Viewer

BASE = datetime(2025, 2, 1, tzinfo=UTC)
SECRET = "zebrafinch"  # a word only in documents agents of team "billing" may not see


def doc(document_id: int, text: str, *, case_ref: str | None, teams: tuple[str, ...] = (),
        restricted: bool = False, channel: str = "email", doc_type: str = "letter") -> IndexedDoc:
    return IndexedDoc(
        document_id=document_id, item_id=f"item-{document_id}", case_ref=case_ref, customer_id=None,
        customer_name=None, title=f"doc {document_id}", text=text, channel=channel, doc_type=doc_type,
        received_at=BASE + timedelta(hours=document_id), case_status="open" if case_ref else None,
        teams=teams, restricted=restricted,
    )


DOCS = [
    doc(1, "billing dispute about the meter reading", case_ref="B-1", teams=("billing",)),
    doc(2, f"claims file {SECRET} water damage meter", case_ref="C-1", teams=("claims",), channel="fax",
        doc_type="claim"),
    doc(3, "general enquiry about the meter", case_ref="G-1"),
    doc(4, f"restricted {SECRET} meter matter", case_ref="R-1", restricted=True, channel="sms", doc_type="secret"),
    doc(5, "unmatched letter about a meter, in triage", case_ref=None),
    doc(6, f"restricted billing {SECRET} meter case", case_ref="B-2", teams=("billing",), restricted=True),
    doc(7, f"claims {SECRET} meter photos", case_ref="C-2", teams=("claims",), channel="fax", doc_type="claim"),
]
BILLING_AGENT = Viewer(role="agent", teams=("billing",))
BILLING_VISIBLE = [1, 3, 5, 6]  # own team (restricted or not), unteamed unrestricted, triage


@pytest.fixture
def filled(search_index: SearchIndex) -> SearchIndex:
    search_index.index(DOCS)
    return search_index


def _all(index: SearchIndex, viewer: Viewer, **kw: object) -> list[int]:
    return sorted(h.document_id for h in index.search(SearchQuery(limit=100, **kw), viewer).hits)  # type: ignore[arg-type]


def test_agent_sees_own_team_unteamed_and_triage_only(filled: SearchIndex) -> None:
    result = filled.search(SearchQuery(text="meter", limit=100), BILLING_AGENT)
    assert sorted(h.document_id for h in result.hits) == BILLING_VISIBLE
    assert result.total == len(BILLING_VISIBLE)
    assert result.facets["channel"] == {"email": 4}
    assert result.facets["doc_type"] == {"letter": 4}
    assert result.facets["case_status"] == {"open": 3}  # triage has no case status


def test_other_teams_words_leak_nowhere(filled: SearchIndex) -> None:
    result = filled.search(SearchQuery(text=SECRET, limit=100), BILLING_AGENT)
    assert [h.document_id for h in result.hits] == [6]
    assert result.total == 1
    assert result.facets["channel"] == {"email": 1}
    assert "claim" not in result.facets["doc_type"] and "secret" not in result.facets["doc_type"]
    for h in result.hits:
        assert "claims file" not in h.snippet and "photos" not in h.snippet
    only_claims = filled.search(SearchQuery(text=f"{SECRET} photos"), BILLING_AGENT)
    assert (only_claims.total, only_claims.hits, only_claims.next_cursor) == (0, [], None)
    assert all(not counts for counts in only_claims.facets.values())
    assert filled.search(SearchQuery(text="claims", channels=("fax",)), BILLING_AGENT).total == 0


def test_more_like_this_of_an_invisible_document_is_empty(filled: SearchIndex) -> None:
    assert filled.search(SearchQuery(like_document_id=2), BILLING_AGENT).total == 0
    similar = filled.search(SearchQuery(like_document_id=1, limit=100), BILLING_AGENT)
    assert set(h.document_id for h in similar.hits) <= set(BILLING_VISIBLE) - {1}


def test_cursor_pages_stay_inside_the_permission(filled: SearchIndex) -> None:
    for sort in ("relevance", "date"):
        seen: list[int] = []
        cursor = None
        while True:
            page = filled.search(SearchQuery(text="meter", limit=1, sort=sort, cursor=cursor), BILLING_AGENT)  # type: ignore[arg-type]
            assert page.total == len(BILLING_VISIBLE)
            seen.extend(h.document_id for h in page.hits)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == BILLING_VISIBLE


def test_roles(filled: SearchIndex) -> None:
    everything = [d.document_id for d in DOCS]
    assert _all(filled, Viewer(role="admin")) == everything
    assert _all(filled, Viewer(role="supervisor")) == everything
    assert _all(filled, Viewer(role="agent")) == [3, 5]
    assert _all(filled, Viewer(role="agent", teams=("billing", "claims"))) == [1, 2, 3, 5, 6, 7]
    assert _all(filled, Viewer(role="integration")) == [3, 5]
    disabled = filled.search(SearchQuery(), Viewer(role="admin", disabled=True))
    assert (disabled.total, disabled.hits) == (0, [])


def test_reassignment_and_restriction_reach_the_index(filled: SearchIndex) -> None:
    filled.update_case(CaseUpdate("C-1", "open", ("billing",), False, None, None))
    assert 2 in _all(filled, BILLING_AGENT)
    filled.update_case(CaseUpdate("G-1", "open", (), True, None, None))  # restricted, no team
    assert 3 not in _all(filled, BILLING_AGENT)
    assert 3 in _all(filled, Viewer(role="supervisor"))
    filled.update_case(CaseUpdate("B-1", "closed", ("claims",), False, None, None))
    assert 1 not in _all(filled, BILLING_AGENT)
