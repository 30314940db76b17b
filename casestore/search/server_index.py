"""What the OpenSearch and Elasticsearch adapters share: one index, bulk writes, the DSL search.

The two clients have the same calls for everything used here (``search``, ``indices.*``,
``helpers.bulk``); the subclasses only bring their client, bulk helper and error classes.
Cursors: sorted by date, ``search_after`` on (received_ts, document_id); by relevance, from/size
inside the first ``RESULT_WINDOW`` hits and ``search_after`` on (_score, document_id) past it.
Every write is one bulk request per call (``helpers.bulk`` splits above 500 actions); outside
``bulk()`` it refreshes so what was written is searchable on return, inside it refreshes once
at the end.

Schema versions: the mapping's ``_meta.casework_schema_version`` says which fields the index was
made with (none: version 1).  Opening an older index adds the fields of the later versions to its
mapping (an additive change every server takes without a rebuild) and records the new version;
documents indexed before carry the new fields only after ``casework reindex``.  A server that
refuses the change raises ``SearchIndexOutdated``; ``rebuild=True`` (``casework reindex``)
recreates an older index from scratch instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from casestore.search import dsl
from casestore.search.errors import SearchError, SearchIndexOutdated, SearchUnavailable
from casestore.search.port import (
    SCHEMA_VERSION,
    CaseUpdate,
    IndexedDoc,
    SearchQuery,
    SearchResult,
    Viewer,
    acl_tokens,
    decode_cursor,
    encode_cursor,
    viewer_acl,
)
from casestore.search.querytext import parse

log = logging.getLogger(__name__)

DEFAULT_INDEX = "casework-documents"
RESULT_WINDOW = 10_000  # index.max_result_window: from + size beyond this needs search_after
_SCAN_PAGE = 1000

BulkFn = Callable[[Any, Iterable[dict[str, Any]], bool], tuple[int, list[Any]]]


class ServerIndex:
    """``SearchIndex`` on a server speaking the OpenSearch/Elasticsearch REST API."""

    product = "search server"

    def __init__(self, client: Any, *, index: str = DEFAULT_INDEX, bulk_fn: BulkFn,
                 unavailable: tuple[type[BaseException], ...], failed: tuple[type[BaseException], ...],
                 rebuild: bool = False) -> None:
        self.client = client
        self.name = index
        self._bulk_fn = bulk_fn
        self._unavailable = unavailable
        self._failed = failed
        self._bulk_depth = 0
        self.rebuilt = False  # True: an outdated index was recreated empty (the caller refills it)
        with self._errors("create the index"):
            if not self.client.indices.exists(index=self.name):
                self.client.indices.create(index=self.name, body=dsl.INDEX_BODY)
                log.info("created %s index %s", self.product, self.name)
                return
        found = self.schema_version()
        if found >= SCHEMA_VERSION:
            return
        if rebuild:
            log.warning("%s index %s: schema version %d, recreating it as version %d", self.product, self.name,
                        found, SCHEMA_VERSION)
            self.clear()
            self.rebuilt = True
            return
        self._upgrade_mapping(found)

    def schema_version(self) -> int:
        """The casework schema version recorded in the index's mapping (1 when none is recorded)."""
        with self._errors("read the index mapping"):
            body = self.client.indices.get_mapping(index=self.name)
        entry: dict[str, Any] = body.get(self.name) or next(iter(body.values()), {})
        mappings: dict[str, Any] = entry.get("mappings") or {}
        try:
            return int((mappings.get("_meta") or {}).get("casework_schema_version", 1))
        except (TypeError, ValueError):
            return 1

    def _upgrade_mapping(self, found: int) -> None:
        """Add the fields of the schema versions after ``found`` to the mapping (see the module docstring)."""
        props = dsl.INDEX_BODY["mappings"]["properties"]
        added = {name: props[name] for version, names in dsl.ADDED_IN.items() if version > found for name in names}
        try:
            with self._errors("add the new fields to the index mapping"):
                self.client.indices.put_mapping(index=self.name, body={
                    "properties": added, "_meta": dsl.INDEX_BODY["mappings"]["_meta"]})
        except SearchUnavailable:
            raise
        except SearchError as e:
            raise SearchIndexOutdated(
                f"the {self.product} index {self.name} has schema version {found} and refused the fields of version "
                f"{SCHEMA_VERSION} ({e}): run `casework reindex` to rebuild it from the store") from e
        log.warning("%s index %s: added %s to the mapping (schema version %d -> %d); run `casework reindex` so "
                    "documents indexed before carry them", self.product, self.name, ", ".join(added), found,
                    SCHEMA_VERSION)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._unavailable as e:
            raise SearchUnavailable(f"the {self.product} is not reachable to {doing}: {e}; retry later") from e
        except self._failed as e:
            raise SearchError(f"the {self.product} refused to {doing}: {e}") from e

    def _write(self, actions: list[dict[str, Any]], doing: str) -> None:
        if not actions:
            return
        with self._errors(doing):
            _ok, errors = self._bulk_fn(self.client, actions, self._bulk_depth == 0)
        if errors:
            raise SearchError(f"the {self.product} rejected {len(errors)} of {len(actions)} writes to "
                              f"{doing}; first: {errors[0]}")

    def index(self, docs: Sequence[IndexedDoc]) -> None:
        self._write([{"_op_type": "index", "_index": self.name, "_id": str(d.document_id), "_source": dsl.source(d)}
                     for d in docs], "index documents")

    def delete(self, document_ids: Sequence[int]) -> None:
        actions = [{"_op_type": "delete", "_index": self.name, "_id": str(i)} for i in document_ids]
        if not actions:
            return
        with self._errors("delete documents"):
            _ok, errors = self._bulk_fn(self.client, actions, self._bulk_depth == 0)
        real = [e for e in errors if (e.get("delete") or {}).get("status") != 404]
        if real:
            raise SearchError(f"the {self.product} failed to delete {len(real)} document(s); first: {real[0]}")

    def clear(self) -> None:
        with self._errors("recreate the index"):
            self.client.indices.delete(index=self.name, ignore_unavailable=True)
            self.client.indices.create(index=self.name, body=dsl.INDEX_BODY)

    def _ids_of_case(self, case_ref: str) -> list[str]:
        ids: list[str] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"query": {"term": {"case_ref": case_ref}}, "size": _SCAN_PAGE,
                                    "sort": [{"document_id": {"order": "asc"}}], "_source": False}
            if after is not None:
                body["search_after"] = after
            with self._errors("find the case's documents"):
                page = self.client.search(index=self.name, body=body)["hits"]["hits"]
            ids.extend(str(h["_id"]) for h in page)
            if len(page) < _SCAN_PAGE:
                return ids
            after = page[-1]["sort"]

    def update_case(self, update: CaseUpdate) -> int:
        ids = self._ids_of_case(update.case_ref)
        fields = {"case_status": update.case_status, "teams": list(update.teams), "restricted": update.restricted,
                  "acl": acl_tokens(update.teams, update.restricted), "customer_id": update.customer_id,
                  "customer_name": update.customer_name}
        self._write([{"_op_type": "update", "_index": self.name, "_id": i, "doc": fields} for i in ids],
                    f"update case {update.case_ref}")
        return len(ids)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        self._bulk_depth += 1
        try:
            yield
        finally:
            self._bulk_depth -= 1
            if self._bulk_depth == 0:
                with self._errors("refresh the index"):
                    self.client.indices.refresh(index=self.name)

    def _visible(self, document_id: int, filter_clauses: list[dict[str, Any]]) -> bool:
        body = {"query": dsl.combine({"term": {"document_id": document_id}}, filter_clauses), "size": 0,
                "track_total_hits": True}
        with self._errors("search"):
            found = self.client.search(index=self.name, body=body)
        return int(found["hits"]["total"]["value"]) > 0

    def search(self, query: SearchQuery, viewer: Viewer) -> SearchResult:
        q = query.checked()
        acl = viewer_acl(viewer)
        if acl == []:
            return SearchResult(total=0, hits=[], facets={})
        tree = parse(q.text)
        filter_clauses = dsl.filters(q, acl)
        main = dsl.text_query(tree, fuzzy=q.fuzzy)
        if q.like_document_id is not None:
            if not self._visible(q.like_document_id, filter_clauses):
                return SearchResult(total=0, hits=[], facets={})
            like = dsl.more_like_this(self.name, q.like_document_id)
            main = like if main is None else {"bool": {"must": [main, like]}}
        cursor = decode_cursor(q.cursor, q.sort) if q.cursor else {"n": 0}
        body: dict[str, Any] = {
            "query": dsl.combine(main, filter_clauses), "size": q.limit, "sort": dsl.sort_clause(q.sort),
            "track_total_hits": True, "_source": dsl.SOURCE_FIELDS,
        }
        if q.sort == "relevance":
            body["track_scores"] = True
        seen_before = int(cursor["n"])
        if q.sort == "relevance" and seen_before + q.limit <= RESULT_WINDOW:
            body["from"] = seen_before  # exact on every server; osmem's search_after on _score is not
        elif "a" in cursor:
            body["search_after"] = cursor["a"]
        if q.facets:
            body["aggs"] = dsl.aggregations()
        if q.snippets:
            body["highlight"] = dsl.highlight(tree)
        with self._errors("search"):
            found = self.client.search(index=self.name, body=body)
        raw_hits = found["hits"]["hits"]
        hits = [dsl.parse_hit(h, with_score=q.sort == "relevance", with_snippet=q.snippets) for h in raw_hits]
        total = int(found["hits"]["total"]["value"])
        seen = int(cursor["n"]) + len(hits)
        next_cursor = None
        if raw_hits and seen < total:
            next_cursor = encode_cursor({"s": q.sort, "n": seen, "a": raw_hits[-1]["sort"]})
        return SearchResult(total=total, hits=hits, facets=dsl.parse_facets(found) if q.facets else {},
                            next_cursor=next_cursor)

    def count(self) -> int:
        with self._errors("count"):
            return int(self.client.count(index=self.name)["count"])

    def close(self) -> None:
        self.client.close()
