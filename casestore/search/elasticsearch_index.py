"""The Elasticsearch 8/9 adapter (elasticsearch-py).  All behaviour lives in ``ServerIndex``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from elasticsearch import ApiError, Elasticsearch, helpers
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import ConnectionTimeout as ESConnectionTimeout
from elasticsearch.exceptions import TransportError

from casestore.search.server_index import DEFAULT_INDEX, ServerIndex


def _bulk(client: Any, actions: Iterable[dict[str, Any]], refresh: bool) -> tuple[int, list[Any]]:
    ok, errors = helpers.bulk(client, actions, raise_on_error=False, refresh=refresh)
    return int(ok), list(errors) if isinstance(errors, list) else []


class ElasticsearchIndex(ServerIndex):
    product = "Elasticsearch server"

    def __init__(self, url: str, *, index: str = DEFAULT_INDEX, timeout_s: float = 30.0, rebuild: bool = False,
                 **client_args: Any) -> None:
        client = Elasticsearch(url, request_timeout=timeout_s, **client_args)
        super().__init__(client, index=index, bulk_fn=_bulk,
                         unavailable=(ESConnectionError, ESConnectionTimeout),
                         failed=(ApiError, TransportError), rebuild=rebuild)
