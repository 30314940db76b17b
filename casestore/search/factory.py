"""Opening the configured search index from a URL (the composition root calls this).

    tantivy:                      DATA_DIR/index (the embedded default)
    tantivy:///abs/path           a Tantivy index in that directory
    opensearch://host:9200        OpenSearch over HTTP; opensearch+https://user:pass@host:9200
    elasticsearch://host:9200     Elasticsearch over HTTP; elasticsearch+https://user:pass@host:9200

A path after the host names the index (default ``casework-documents``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from casestore.search.errors import InvalidSearch
from casestore.search.port import SearchIndex
from casestore.search.server_index import DEFAULT_INDEX

DEFAULT_URL = "tantivy:"


def _server_url(scheme: str, netloc: str) -> tuple[str, str]:
    """(``http[s]://user:pass@host:port``, base scheme) for a server URL."""
    base, _, transport = scheme.partition("+")
    return f"{transport or 'http'}://{netloc}", base


def open_search_index(url: str, data_dir: Path) -> SearchIndex:
    """The index ``url`` points at; see the module docstring for the forms."""
    parts = urlsplit(url.strip() or DEFAULT_URL)
    scheme = parts.scheme.lower()
    if scheme == "tantivy":
        from casestore.search.tantivy_index import TantivyIndex

        path = Path(unquote(parts.path)) if parts.path not in ("", "/") else data_dir / "index"
        return TantivyIndex(path)
    if scheme.split("+")[0] in ("opensearch", "elasticsearch"):
        if not parts.hostname:
            raise InvalidSearch(f"search URL {url!r} has no host: write {scheme}://host:9200")
        http_url, base = _server_url(scheme, parts.netloc)
        name = parts.path.strip("/") or DEFAULT_INDEX
        if base == "opensearch":
            from casestore.search.opensearch_index import OpenSearchIndex

            return OpenSearchIndex(http_url, index=name)
        from casestore.search.elasticsearch_index import ElasticsearchIndex

        return ElasticsearchIndex(http_url, index=name)
    raise InvalidSearch(
        f"unsupported search URL {url!r}: use tantivy:, opensearch://host:9200 or elasticsearch://host:9200"
    )
