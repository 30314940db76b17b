"""Opening the configured search index from a URL (the composition root calls this).

    tantivy:                      DATA_DIR/index (the embedded default)
    tantivy:///abs/path           a Tantivy index in that directory
    opensearch://host:9200        OpenSearch over HTTP; opensearch+https://user:pass@host:9200
    elasticsearch://host:9200     Elasticsearch over HTTP; elasticsearch+https://user:pass@host:9200

A path after the host names the index (default ``casework-documents``).

``ServerAccess`` carries what a secured server needs beyond the URL: a user and password (HTTP
basic auth, e.g. OpenSearch's security plugin; a user in the URL wins) and the TLS check of the
server's certificate (on by default; ``ca_certs`` names the PEM file of the CA that signed it,
for a private CA or OpenSearch's demo certificates).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from casestore.search.errors import InvalidSearch
from casestore.search.port import SearchIndex
from casestore.search.server_index import DEFAULT_INDEX

DEFAULT_URL = "tantivy:"


@dataclass(frozen=True)
class ServerAccess:
    username: str = ""
    password: str = ""
    ca_certs: str = ""
    verify_certs: bool = True

    def client_args(self, base: str, http_url: str) -> dict[str, Any]:
        """Keyword arguments for the opensearch-py or elasticsearch-py client."""
        args: dict[str, Any] = {}
        if self.username and "@" not in http_url:
            args["http_auth" if base == "opensearch" else "basic_auth"] = (self.username, self.password)
        if http_url.startswith("https://"):
            args["verify_certs"] = self.verify_certs
            if self.ca_certs:
                if not Path(self.ca_certs).is_file():
                    raise InvalidSearch(f"search CA file {self.ca_certs!r} does not exist: give the PEM file of "
                                        "the CA that signed the search server's certificate")
                args["ca_certs"] = self.ca_certs
            if not self.verify_certs and base == "opensearch":
                args["ssl_show_warn"] = False
        return args


def _server_url(scheme: str, netloc: str) -> tuple[str, str]:
    """(``http[s]://user:pass@host:port``, base scheme) for a server URL."""
    base, _, transport = scheme.partition("+")
    return f"{transport or 'http'}://{netloc}", base


def open_search_index(url: str, data_dir: Path, access: ServerAccess | None = None, *,
                      rebuild: bool = False) -> SearchIndex:
    """The index ``url`` points at; see the module docstring for the forms.

    ``rebuild`` (``casework reindex``): an index of an older schema version is recreated empty
    instead of refused (Tantivy) or upgraded in place (servers).
    """
    parts = urlsplit(url.strip() or DEFAULT_URL)
    scheme = parts.scheme.lower()
    if scheme == "tantivy":
        from casestore.search.tantivy_index import TantivyIndex

        path = Path(unquote(parts.path)) if parts.path not in ("", "/") else data_dir / "index"
        return TantivyIndex(path, rebuild=rebuild)
    if scheme.split("+")[0] in ("opensearch", "elasticsearch"):
        if not parts.hostname:
            raise InvalidSearch(f"search URL {url!r} has no host: write {scheme}://host:9200")
        http_url, base = _server_url(scheme, parts.netloc)
        name = parts.path.strip("/") or DEFAULT_INDEX
        client_args = (access or ServerAccess()).client_args(base, http_url)
        if base == "opensearch":
            from casestore.search.opensearch_index import OpenSearchIndex

            return OpenSearchIndex(http_url, index=name, rebuild=rebuild, **client_args)
        from casestore.search.elasticsearch_index import ElasticsearchIndex

        return ElasticsearchIndex(http_url, index=name, rebuild=rebuild, **client_args)
    raise InvalidSearch(
        f"unsupported search URL {url!r}: use tantivy:, opensearch://host:9200 or elasticsearch://host:9200"
    )
