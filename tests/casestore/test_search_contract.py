"""The SearchIndex contract: the same tests on Tantivy, OpenSearch and Elasticsearch (osmem-server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casestore.search.errors import InvalidSearch
from casestore.search.port import CaseUpdate, IndexedDoc, SearchIndex, SearchQuery, Viewer

ADMIN = Viewer(role="admin")
BASE = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def doc(document_id: int, text: str, **overrides: object) -> IndexedDoc:
    values: dict[str, object] = {
        "document_id": document_id, "item_id": f"item-{document_id}", "case_ref": "CM-2025-0001",
        "customer_id": "C1", "customer_name": "Jane Smith", "title": f"letter {document_id}", "text": text,
        "channel": "email", "doc_type": "letter", "received_at": BASE + timedelta(days=document_id),
        "case_status": "open", "teams": (), "restricted": False,
    }
    values.update(overrides)
    return IndexedDoc(**values)  # type: ignore[arg-type]


CORPUS = [
    doc(1, "The boiler is leaking water into the kitchen"),
    doc(2, "Invoice overdue: please pay the outstanding balance", doc_type="invoice", channel="scan"),
    doc(3, "Water damage to the ceiling after the storm", case_ref="CM-2025-0002", customer_id="C2",
        customer_name="Omar Haddad", case_status="pending"),
    doc(4, "Boiler service booked, engineer visits Monday", channel="sms"),
    doc(5, "Complaint about the engineer: the boiler still leaks", doc_type="complaint",
        case_ref="CM-2025-0002", customer_id="C2", customer_name="Omar Haddad", case_status="pending"),
]


def ids(index: SearchIndex, text: str = "", **kw: object) -> list[int]:
    result = index.search(SearchQuery(text=text, limit=100, **kw), ADMIN)  # type: ignore[arg-type]
    return sorted(h.document_id for h in result.hits)


@pytest.fixture
def filled(search_index: SearchIndex) -> SearchIndex:
    search_index.index(CORPUS)
    return search_index


def test_words_are_anded_and_stemmed(filled: SearchIndex) -> None:
    assert ids(filled, "boiler") == [1, 4, 5]
    assert ids(filled, "boiler water") == [1]
    assert ids(filled, "leak") == [1, 5]  # leaking, leaks
    assert ids(filled, "invoices") == [2]


def test_boolean_operators_phrases_and_groups(filled: SearchIndex) -> None:
    assert ids(filled, "invoice OR ceiling") == [2, 3]
    assert ids(filled, "boiler AND NOT engineer") == [1]
    assert ids(filled, "boiler -engineer") == [1]
    assert ids(filled, "NOT boiler") == [2, 3]
    assert ids(filled, '"water damage"') == [3]
    assert ids(filled, '"damage water"') == []
    assert ids(filled, '"leaks"') == [5]  # a quoted word is exact: no stemming
    assert ids(filled, "(invoice OR storm) water") == [3]
    assert ids(filled, "") == [1, 2, 3, 4, 5]
    assert ids(filled, "!!! ---") == [1, 2, 3, 4, 5]  # nothing searchable: everything


def test_customer_name_and_title_are_searched(filled: SearchIndex) -> None:
    assert ids(filled, "haddad") == [3, 5]
    assert ids(filled, "letter") == [1, 2, 3, 4, 5]


def test_filters(filled: SearchIndex) -> None:
    assert ids(filled, channels=("sms", "scan")) == [2, 4]
    assert ids(filled, doc_types=("complaint",)) == [5]
    assert ids(filled, case_statuses=("pending",)) == [3, 5]
    assert ids(filled, customer_id="C1") == [1, 2, 4]
    assert ids(filled, case_ref="CM-2025-0002") == [3, 5]
    assert ids(filled, date_from=BASE + timedelta(days=2), date_to=BASE + timedelta(days=4)) == [2, 3]
    assert ids(filled, "boiler", channels=("email",)) == [1, 5]


def test_fuzzy_finds_ocr_noise(filled: SearchIndex) -> None:
    assert ids(filled, "bioler") == []
    assert ids(filled, "bioler", fuzzy=True) == [1, 4, 5]
    assert ids(filled, "enginer", fuzzy=True) == [4, 5]


def test_index_is_an_upsert_and_delete_removes(filled: SearchIndex) -> None:
    filled.index([doc(1, "completely different words now")])
    assert ids(filled, "kitchen") == []
    assert ids(filled, "different") == [1]
    assert filled.search(SearchQuery(limit=0), ADMIN).total == 5
    filled.delete([1, 2, 999])
    assert ids(filled) == [3, 4, 5]


def test_relevance_and_date_sort(filled: SearchIndex) -> None:
    ranked = filled.search(SearchQuery(text="boiler leak"), ADMIN).hits
    assert [h.document_id for h in ranked][:1] in ([1], [5])
    assert all(h.score is not None and h.score > 0 for h in ranked)
    newest = filled.search(SearchQuery(sort="date"), ADMIN).hits
    assert [h.document_id for h in newest] == [5, 4, 3, 2, 1]
    assert all(h.score is None for h in newest)


def test_hit_fields(filled: SearchIndex) -> None:
    (hit,) = filled.search(SearchQuery(text="invoice"), ADMIN).hits
    assert (hit.document_id, hit.item_id, hit.case_ref, hit.title) == (2, "item-2", "CM-2025-0001", "letter 2")
    assert (hit.channel, hit.doc_type, hit.case_status, hit.customer_id) == ("scan", "invoice", "open", "C1")
    assert hit.received_at == BASE + timedelta(days=2)


def test_snippets_highlight_and_escape(search_index: SearchIndex) -> None:
    search_index.index([doc(1, "Dear <Sir>, the boiler & the radiator leak. " + "Filler text here. " * 40)])
    (hit,) = search_index.search(SearchQuery(text="boiler"), ADMIN).hits
    assert "<b>boiler</b>" in hit.snippet
    assert "&lt;Sir&gt;" in hit.snippet or "<Sir>" not in hit.snippet
    assert "&amp;" in hit.snippet
    assert len(hit.snippet) < 400
    (phrase_hit,) = search_index.search(SearchQuery(text='"radiator leak"'), ADMIN).hits
    assert "<b>radiator</b>" in phrase_hit.snippet
    (plain,) = search_index.search(SearchQuery(text="letter"), ADMIN).hits  # matched the title only
    assert plain.snippet.startswith("Dear &lt;Sir&gt;")


def test_facets_count_the_whole_result(filled: SearchIndex) -> None:
    facets = filled.search(SearchQuery(text="boiler", limit=1), ADMIN).facets
    assert facets["channel"] == {"email": 2, "sms": 1}
    assert facets["doc_type"] == {"letter": 2, "complaint": 1}
    assert facets["case_status"] == {"open": 2, "pending": 1}


def test_more_like_this(search_index: SearchIndex) -> None:
    search_index.index([
        doc(1, "boiler pressure drops and the boiler makes a banging noise at night"),
        doc(2, "banging noise from the boiler at night, pressure keeps dropping"),
        doc(3, "please update my postal address for future invoices"),
        doc(4, "change of address: new postal address attached"),
    ])
    like = search_index.search(SearchQuery(like_document_id=1), ADMIN).hits
    assert like and like[0].document_id == 2
    assert 1 not in [h.document_id for h in like]
    assert search_index.search(SearchQuery(like_document_id=999), ADMIN).total == 0


@pytest.mark.parametrize("sort", ["relevance", "date"])
def test_cursor_pages_through_everything_once(search_index: SearchIndex, sort: str) -> None:
    search_index.index([doc(i, f"parcel number {i} delayed" + " again" * (i % 4)) for i in range(1, 38)])
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        result = search_index.search(SearchQuery(text="parcel", limit=10, sort=sort, cursor=cursor), ADMIN)  # type: ignore[arg-type]
        assert result.total == 37
        seen.extend(h.document_id for h in result.hits)
        pages += 1
        cursor = result.next_cursor
        if cursor is None:
            break
    assert pages == 4
    assert sorted(seen) == list(range(1, 38))
    if sort == "date":
        assert seen == list(range(37, 0, -1))


def test_bad_cursor_is_invalid(filled: SearchIndex) -> None:
    with pytest.raises(InvalidSearch):
        filled.search(SearchQuery(cursor="not-a-cursor"), ADMIN)
    date_cursor = filled.search(SearchQuery(sort="date", limit=1), ADMIN).next_cursor
    with pytest.raises(InvalidSearch):
        filled.search(SearchQuery(sort="relevance", cursor=date_cursor), ADMIN)


def test_update_case_changes_status_team_and_customer(filled: SearchIndex) -> None:
    changed = filled.update_case(CaseUpdate(case_ref="CM-2025-0002", case_status="closed", teams=("claims",),
                                            restricted=False, customer_id="C9", customer_name="Ada Lovelace"))
    assert changed == 2
    assert ids(filled, case_statuses=("closed",)) == [3, 5]
    assert ids(filled, "lovelace") == [3, 5]
    assert ids(filled, "haddad") == []
    assert ids(filled, "storm") == [3]  # text kept
    agent = Viewer(role="agent", teams=("billing",))
    assert filled.search(SearchQuery(text="storm"), agent).total == 0
    assert filled.update_case(CaseUpdate("CM-NOPE", "open", (), False, None, None)) == 0


def test_clear_and_bulk(filled: SearchIndex) -> None:
    filled.clear()
    assert ids(filled) == []
    with filled.bulk():
        filled.index(CORPUS[:2])
        filled.index(CORPUS[2:])
    assert ids(filled) == [1, 2, 3, 4, 5]
