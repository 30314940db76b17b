"""open_search_index: one URL setting chooses the adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from osmem_server import OsmemServer

from casestore.search.elasticsearch_index import ElasticsearchIndex
from casestore.search.errors import InvalidSearch, SearchUnavailable
from casestore.search.factory import open_search_index
from casestore.search.opensearch_index import OpenSearchIndex
from casestore.search.port import SearchQuery, Viewer
from casestore.search.tantivy_index import TantivyIndex


def test_tantivy_urls(tmp_path: Path) -> None:
    default = open_search_index("tantivy:", tmp_path)
    assert isinstance(default, TantivyIndex) and default.path == tmp_path / "index"
    default.close()
    elsewhere = open_search_index(f"tantivy://{tmp_path / 'other'}", tmp_path)
    assert isinstance(elsewhere, TantivyIndex) and elsewhere.path == tmp_path / "other"
    elsewhere.close()


def test_server_urls(search_server: OsmemServer, es_compat_url: str, tmp_path: Path) -> None:
    os_index = open_search_index(search_server.url.replace("http://", "opensearch://") + "/factory-os", tmp_path)
    assert isinstance(os_index, OpenSearchIndex) and os_index.name == "factory-os"
    assert os_index.search(SearchQuery(), Viewer(role="admin")).total == 0
    os_index.close()
    es_index = open_search_index(es_compat_url.replace("http://", "elasticsearch://"), tmp_path)
    assert isinstance(es_index, ElasticsearchIndex) and es_index.name == "casework-documents"
    es_index.close()


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(InvalidSearch):
        open_search_index("solr://host:8983", tmp_path)
    with pytest.raises(InvalidSearch):
        open_search_index("opensearch://", tmp_path)
    with pytest.raises(SearchUnavailable):
        open_search_index("opensearch://127.0.0.1:9", tmp_path)
