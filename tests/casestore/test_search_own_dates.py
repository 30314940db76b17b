"""The item's own date (issue 11 point 8): sent_at / captured_at indexed, filtered and shown by every
adapter, and the schema-version step that brings an index written before them up to date."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tantivy
from osmem_server import OsmemServer

from casestore.search import dsl
from casestore.search.elasticsearch_index import ElasticsearchIndex
from casestore.search.errors import InvalidSearch, SearchIndexOutdated
from casestore.search.opensearch_index import OpenSearchIndex
from casestore.search.port import SCHEMA_VERSION, IndexedDoc, SearchIndex, SearchQuery, Viewer
from casestore.search.server_index import ServerIndex
from casestore.search.tantivy_index import VERSION_FILE, TantivyIndex
from tests.casestore.test_search_contract import BASE, doc

ADMIN = Viewer(role="admin")
SENT = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
CAPTURED = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


def dated_docs() -> list[IndexedDoc]:
    return [
        doc(1, "letter sent in March", sent_at=SENT),
        doc(2, "scan made in June", channel="scan", captured_at=CAPTURED),
        doc(3, "no own date at all"),
        doc(4, "sent in June, received much later", sent_at=CAPTURED + timedelta(days=3)),
    ]


def ids(index: SearchIndex, **kw: Any) -> list[int]:
    return sorted(h.document_id for h in index.search(SearchQuery(limit=100, **kw), ADMIN).hits)


def test_dated_range_matches_sent_or_captured(search_index: SearchIndex) -> None:
    search_index.index(dated_docs())
    march = datetime(2024, 3, 1, tzinfo=UTC)
    april = datetime(2024, 4, 1, tzinfo=UTC)
    july = datetime(2024, 7, 1, tzinfo=UTC)
    assert ids(search_index, dated_from=march, dated_to=april) == [1]
    assert ids(search_index, dated_from=april, dated_to=july) == [2, 4]
    assert ids(search_index, dated_from=march) == [1, 2, 4]  # no own date: left out once the filter is set
    assert ids(search_index, dated_to=datetime(2024, 6, 1, 8, 0, tzinfo=UTC)) == [1]  # the end is exclusive
    assert ids(search_index) == [1, 2, 3, 4]
    # the received date is a different filter: every document was received in 2025
    assert ids(search_index, dated_from=march, date_from=BASE) == [1, 2, 4]
    assert ids(search_index, dated_from=march, date_to=BASE) == []


def test_hits_carry_the_own_dates(search_index: SearchIndex) -> None:
    search_index.index(dated_docs())
    hits = {h.document_id: h for h in search_index.search(SearchQuery(limit=10), ADMIN).hits}
    assert (hits[1].sent_at, hits[1].captured_at) == (SENT, None)
    assert (hits[2].sent_at, hits[2].captured_at) == (None, CAPTURED)
    assert (hits[3].sent_at, hits[3].captured_at) == (None, None)


def test_own_dates_survive_a_case_update(search_index: SearchIndex) -> None:
    from casestore.search.port import CaseUpdate

    search_index.index(dated_docs())
    search_index.update_case(CaseUpdate(case_ref="CM-2025-0001", case_status="closed", teams=("t",),
                                        restricted=False, customer_id="C1", customer_name="Jane Smith"))
    assert ids(search_index, dated_from=datetime(2024, 3, 1, tzinfo=UTC), case_statuses=("closed",)) == [1, 2, 4]


def test_reversed_range_is_refused() -> None:
    with pytest.raises(InvalidSearch):
        SearchQuery(dated_from=CAPTURED, dated_to=SENT).checked()


# -- schema version 1 indexes ------------------------------------------------------------------

def _v1_tantivy(path: Path) -> None:
    """A real index as version 1 wrote it: no sent_at/captured_at fields, no version file."""
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("document_id", stored=True, indexed=True, fast=True)
    sb.add_text_field("text", stored=True)
    index = tantivy.Index(sb.build(), path=str(path))
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    writer.add_document(tantivy.Document(document_id=[7], text=["old"]))
    writer.commit()
    writer.wait_merging_threads()


def test_tantivy_v1_index_is_refused_until_reindex_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "index"
    path.mkdir()
    (path / "keep.txt").write_text("not tantivy's")
    _v1_tantivy(path)
    with pytest.raises(SearchIndexOutdated, match="casework reindex"):
        TantivyIndex(path, threads=1)
    rebuilt = TantivyIndex(path, threads=1, rebuild=True)  # what `casework reindex` opens
    assert rebuilt.rebuilt and rebuilt.count() == 0
    assert (path / "keep.txt").exists()
    rebuilt.index(dated_docs())
    assert ids(rebuilt, dated_from=datetime(2024, 3, 1, tzinfo=UTC)) == [1, 2, 4]
    rebuilt.close()
    assert f'"schema_version": {SCHEMA_VERSION}' in (path / VERSION_FILE).read_text()
    again = TantivyIndex(path, threads=1)  # current version: opens as is, keeps its documents
    assert not again.rebuilt and again.count() == 4
    again.close()


def _v1_body() -> dict[str, Any]:
    body = copy.deepcopy(dsl.INDEX_BODY)
    for name in dsl.ADDED_IN[2]:
        del body["mappings"]["properties"][name]
    del body["mappings"]["_meta"]
    return body


@pytest.mark.parametrize("kind", ["opensearch", "elasticsearch"])
def test_server_v1_index_takes_the_new_fields_in_place(kind: str, search_server: OsmemServer,
                                                       request: pytest.FixtureRequest) -> None:
    name = f"cw-v1-{uuid.uuid4().hex[:10]}"
    old = OpenSearchIndex(search_server.url, index=f"{name}-probe")  # only for its client
    old.client.indices.delete(index=f"{name}-probe")
    old.client.indices.create(index=name, body=_v1_body())
    old.client.index(index=name, id="9", body={"document_id": 9, "item_id": "i9", "title": "old", "text": "old text",
                                               "channel": "email", "doc_type": "letter", "acl": ["public"],
                                               "restricted": False, "received_at": "2023-01-01T00:00:00+00:00",
                                               "received_ts": 1672531200}, refresh=True)
    old.close()
    index: ServerIndex = (OpenSearchIndex(search_server.url, index=name) if kind == "opensearch"
                          else ElasticsearchIndex(request.getfixturevalue("es_compat_url"), index=name))
    try:
        assert index.schema_version() == SCHEMA_VERSION and not index.rebuilt
        index.index(dated_docs())  # strict mapping: refused unless the new fields were added
        assert ids(index, dated_from=datetime(2024, 3, 1, tzinfo=UTC)) == [1, 2, 4]
        assert ids(index) == [1, 2, 3, 4, 9]  # the old document is still there, without an own date
        reopened = OpenSearchIndex(search_server.url, index=name, rebuild=True)
        assert not reopened.rebuilt and reopened.count() == 5  # already current: a reindex refills in place
        reopened.close()
    finally:
        index.client.indices.delete(index=name, ignore_unavailable=True)
        index.close()


def test_server_v1_index_is_recreated_by_reindex(search_server: OsmemServer) -> None:
    name = f"cw-v1-{uuid.uuid4().hex[:10]}"
    probe = OpenSearchIndex(search_server.url, index=name)
    probe.client.indices.delete(index=name)
    probe.client.indices.create(index=name, body=_v1_body())
    probe.close()
    index = OpenSearchIndex(search_server.url, index=name, rebuild=True)
    try:
        assert index.rebuilt and index.schema_version() == SCHEMA_VERSION and index.count() == 0
    finally:
        index.client.indices.delete(index=name, ignore_unavailable=True)
        index.close()
