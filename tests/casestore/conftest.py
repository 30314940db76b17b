"""Search fixtures: a real Tantivy index, and osmem-server (in-memory OpenSearch REST API) for the
OpenSearch and Elasticsearch adapters.

elasticsearch-py 8/9 sends ``application/vnd.elasticsearch+json; compatible-with=N`` and expects
an ``X-Elastic-Product: Elasticsearch`` answer; osmem answers such requests with 406.  The
Elasticsearch adapter therefore talks to osmem through ``_EsCompatProxy``, a loopback proxy
that rewrites those headers.  This is test setup only: the product code sends what the real
client sends.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from osmem_server import OsmemServer

from casestore.search.elasticsearch_index import ElasticsearchIndex
from casestore.search.opensearch_index import OpenSearchIndex
from casestore.search.port import SearchIndex
from casestore.search.tantivy_index import TantivyIndex

SEARCH_ADAPTERS = ["tantivy", "opensearch", "elasticsearch"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def _plain_media_type(value: str) -> str:
    """``application/vnd.elasticsearch+x-ndjson; compatible-with=9`` -> ``application/x-ndjson``."""
    media = value.split(";")[0].strip().lower()
    return media.replace("vnd.elasticsearch+", "") if "vnd.elasticsearch+" in media else value


class _EsCompatProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 9200
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _EsCompatProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: _plain_media_type(v) if k.lower() in ("content-type", "accept") else v
                   for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP | {"date", "server", "x-elastic-product"}:
                self.send_header(k, v)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


@pytest.fixture(scope="session")
def search_server() -> Iterator[OsmemServer]:
    """One osmem-server for the session, on a free loopback port."""
    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    yield server
    server.close()


@pytest.fixture(scope="session")
def es_compat_url(search_server: OsmemServer) -> Iterator[str]:
    proxy = _EsCompatProxy(search_server.url)
    thread = threading.Thread(target=proxy.serve_forever, name="es-compat-proxy", daemon=True)
    thread.start()
    yield proxy.url
    proxy.shutdown()
    proxy.server_close()


def open_adapter(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> SearchIndex:
    name = f"cw-test-{uuid.uuid4().hex[:12]}"
    if kind == "tantivy":
        return TantivyIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    if kind == "opensearch":
        return OpenSearchIndex(request.getfixturevalue("search_server").url, index=name)
    return ElasticsearchIndex(request.getfixturevalue("es_compat_url"), index=name)


@pytest.fixture(params=SEARCH_ADAPTERS)
def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    """A fresh, empty index of each adapter."""
    index = open_adapter(request.param, request, tmp_path)
    yield index
    if not isinstance(index, TantivyIndex):
        index.client.indices.delete(index=index.name, ignore_unavailable=True)  # type: ignore[attr-defined]
    index.close()
