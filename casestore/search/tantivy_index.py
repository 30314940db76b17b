"""The embedded search index: Tantivy (BM25) in a directory, DATA_DIR/index by default.

Writes: one ``IndexWriter`` commit per ``index``/``delete``/``update_case`` call.  Outside
``bulk()`` the writer is opened for the call and released afterwards (after its merges), so
several processes (``casework serve``, ``casework reindex``) take turns; a writer held by another
process is waited for up to ``lock_timeout_s`` and then reported as ``SearchUnavailable``
(retryable).  Inside ``bulk()`` one writer stays open and every call still commits, so a crash
loses at most the batch in progress.  The writer's memory is bounded by ``heap_bytes``; it
indexes on ``threads`` threads (0: Tantivy's choice, one per core up to 8).  Inside ``bulk()``
an ``index`` call deletes (for the upsert) only ids not above the largest id the index held
when the writer was taken or was given since: new documents queue no deletes.

Reads: searchers see every commit of this process at once (the reader is reloaded after each
commit) and commits of other processes shortly after (Tantivy watches the index's meta file).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tantivy

from casestore.search import tantivy_query as tq
from casestore.search.errors import SearchError, SearchIndexOutdated, SearchUnavailable
from casestore.search.port import (
    FACET_FIELDS,
    SCHEMA_VERSION,
    SNIPPET_CHARS,
    CaseUpdate,
    Hit,
    IndexedDoc,
    SearchQuery,
    SearchResult,
    Viewer,
    acl_tokens,
    decode_cursor,
    encode_cursor,
    epoch_seconds,
    plain_snippet,
    viewer_acl,
)
from casestore.search.querytext import parse, positive_words

log = logging.getLogger(__name__)

VERSION_FILE = "casework-schema.json"  # {"schema_version": N}; an index without it was written by version 1
_TANTIVY_FILE = re.compile(r"\.tantivy-\w+\.lock|[0-9a-f]{32}(\.\d+)?\.\w+")  # locks; segment files
_LOCK_RETRY_S = 0.2
_UPDATE_PAGE = 1000
# Indexing threads of the writer: half the cores, at most 2.  One Python thread feeds the writer
# (and, in an import, SQLite takes a core); each Tantivy thread writes its own segments, so more
# threads than the feeder can keep busy only make more, smaller segments to merge.  On 2 cores
# one thread imported 200k documents with ~12% less CPU than two (benchmarks/search_bench.py).
DEFAULT_WRITER_THREADS = min(2, max(1, (os.cpu_count() or 2) // 2))


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("document_id", stored=True, indexed=True, fast=True)
    sb.add_text_field("item_id", stored=True, tokenizer_name="raw")
    sb.add_text_field("case_ref", stored=True, tokenizer_name="raw")
    sb.add_text_field("customer_id", stored=True, tokenizer_name="raw")
    sb.add_text_field("customer_name", stored=True, tokenizer_name=tq.STEMMED)
    sb.add_text_field("title", stored=True, tokenizer_name=tq.STEMMED)
    sb.add_text_field("title_exact", stored=False, tokenizer_name=tq.EXACT)
    sb.add_text_field("text", stored=True, tokenizer_name=tq.STEMMED)
    sb.add_text_field("text_exact", stored=False, tokenizer_name=tq.EXACT)
    for name in FACET_FIELDS:
        sb.add_text_field(name, stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("teams", stored=True, tokenizer_name="raw")
    sb.add_text_field("acl", stored=False, tokenizer_name="raw")
    sb.add_boolean_field("restricted", stored=True, indexed=True)
    sb.add_date_field("received_at", stored=True, indexed=True, fast=True)
    sb.add_unsigned_field("date_key", stored=False, indexed=True, fast=True)
    sb.add_date_field("sent_at", stored=True, indexed=True, fast=True)
    sb.add_date_field("captured_at", stored=True, indexed=True, fast=True)
    return sb.build()


def date_key(doc_received_seconds: int, document_id: int) -> int:
    """One u64 that sorts by date, then document id: (seconds << 32) | id."""
    return (doc_received_seconds << 32) | (document_id & 0xFFFF_FFFF)


def _count(result: Any) -> int:
    """The match count of a ``search(count=True)`` (missing from the type stubs)."""
    return int(result.count)


class TantivyIndex:
    """``SearchIndex`` on Tantivy; see the module docstring."""

    def __init__(self, path: Path, *, heap_bytes: int = 128_000_000, threads: int = DEFAULT_WRITER_THREADS,
                 lock_timeout_s: float = 30.0, rebuild: bool = False) -> None:
        """Open (or create) the index in ``path``.

        An index written with an older ``SCHEMA_VERSION`` raises ``SearchIndexOutdated``, unless
        ``rebuild`` (``casework reindex``): then its files are removed and an empty index of the
        current schema takes their place, for the caller to fill from the store.
        """
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = build_schema()
        self.rebuilt = False  # True: an outdated index was removed for a rebuild (the caller refills it)
        found = self._version_on_disk()
        if found is not None and found != SCHEMA_VERSION:
            if not rebuild:
                raise SearchIndexOutdated(
                    f"the search index in {self.path} has schema version {found}; this casework writes version "
                    f"{SCHEMA_VERSION}: run `casework reindex` to rebuild it from the store")
            log.warning("search index %s: schema version %d, rebuilding as version %d", self.path, found,
                        SCHEMA_VERSION)
            self._remove_index_files()
            self.rebuilt = True
        try:
            self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        except ValueError as e:
            raise SearchError(
                f"the search index in {self.path} was written with another schema ({e}); "
                "run `casework reindex` to rebuild it from the store"
            ) from e
        (self.path / VERSION_FILE).write_text(json.dumps({"schema_version": SCHEMA_VERSION}), encoding="utf-8")
        tq.register_analyzers(self._index)
        self.heap_bytes = heap_bytes
        self.threads = threads
        self.lock_timeout_s = lock_timeout_s
        self._lock = threading.RLock()
        self._writer: tantivy.IndexWriter | None = None
        self._bulk_depth = 0
        self._max_id = 0  # in bulk(): no document in the index has a larger document_id

    def _version_on_disk(self) -> int | None:
        """The schema version of the index in ``path``; None when there is no index yet."""
        marker = self.path / VERSION_FILE
        if marker.is_file():
            try:
                return int(json.loads(marker.read_text(encoding="utf-8"))["schema_version"])
            except (ValueError, KeyError, TypeError):
                return 0  # unreadable: treat as outdated
        return 1 if (self.path / "meta.json").is_file() else None

    def _remove_index_files(self) -> None:
        """Remove Tantivy's files (segments, meta, locks) from ``path``; leave anything else alone."""
        for entry in self.path.iterdir():
            if entry.is_file() and (entry.name in ("meta.json", ".managed.json", VERSION_FILE)
                                    or _TANTIVY_FILE.fullmatch(entry.name)):
                entry.unlink()

    # -- writing ---------------------------------------------------------------------------------

    def _open_writer(self) -> tantivy.IndexWriter:
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                return self._index.writer(heap_size=self.heap_bytes, num_threads=self.threads)
            except ValueError as e:
                if "lock" not in str(e).lower() or time.monotonic() >= deadline:
                    raise SearchUnavailable(
                        f"the search index {self.path} is being written by another process "
                        f"(waited {self.lock_timeout_s:.0f}s): {e}; retry when it has finished"
                    ) from e
                time.sleep(_LOCK_RETRY_S)

    @contextmanager
    def _writing(self) -> Iterator[tantivy.IndexWriter]:
        """A writer for one committed unit of work."""
        with self._lock:
            writer = self._writer or self._open_writer()
            try:
                yield writer
                writer.commit()
            except BaseException:
                writer.rollback()
                if self._bulk_depth == 0:
                    del writer
                raise
            if self._bulk_depth == 0:
                writer.wait_merging_threads()  # releases the writer lock
            else:
                self._writer = writer
            self._index.reload()

    @contextmanager
    def bulk(self) -> Iterator[None]:
        with self._lock:
            if self._bulk_depth == 0:
                self._writer = self._open_writer()
                self._max_id = self._max_document_id()
            self._bulk_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._bulk_depth -= 1
                if self._bulk_depth == 0 and self._writer is not None:
                    writer, self._writer = self._writer, None
                    writer.commit()
                    writer.wait_merging_threads()
                    self._index.reload()

    def _max_document_id(self) -> int:
        """The largest document_id in the index, read while this process holds the writer lock."""
        self._index.reload()  # the last commit, whoever made it: nobody else can commit now
        result = self._index.searcher().search(tantivy.Query.all_query(), 1, order_by_field="document_id",
                                               order=tantivy.Order.Desc)
        return int(result.hits[0][0]) if result.hits else 0

    def _document(self, d: IndexedDoc) -> tantivy.Document:
        values: dict[str, Any] = {
            "document_id": d.document_id,
            "item_id": d.item_id,
            "title": d.title,
            "title_exact": d.title,
            "text": d.text,
            "text_exact": d.text,
            "channel": d.channel,
            "doc_type": d.doc_type,
            "teams": list(d.teams),
            "acl": acl_tokens(d.teams, d.restricted),
            "restricted": d.restricted,
            "received_at": d.received_at,
            "date_key": date_key(epoch_seconds(d.received_at), d.document_id),
        }
        for name in ("case_ref", "customer_id", "customer_name", "case_status", "sent_at", "captured_at"):
            value = getattr(d, name)
            if value is not None:
                values[name] = value
        return tantivy.Document.from_dict(values, self.schema)

    def index(self, docs: Sequence[IndexedDoc]) -> None:
        if not docs:
            return
        with self._writing() as writer:
            # Upsert: delete by id first.  In bulk() the writer is ours from start to end, so an
            # id above every id the index held and every id given since cannot be there yet and
            # needs no delete (a reindex or an import of new documents then queues no deletes,
            # which Tantivy applies to every segment at each commit).
            bulk = self._bulk_depth > 0
            for d in docs:
                if not bulk or d.document_id <= self._max_id:
                    writer.delete_documents_by_term("document_id", d.document_id)
                else:  # raised before the commit: if that fails, a too-large bound only costs deletes
                    self._max_id = d.document_id
                writer.add_document(self._document(d))
        log.debug("indexed %d document(s)", len(docs))

    def delete(self, document_ids: Sequence[int]) -> None:
        if not document_ids:
            return
        with self._writing() as writer:
            for document_id in document_ids:
                writer.delete_documents_by_term("document_id", int(document_id))

    def clear(self) -> None:
        with self._lock:
            with self._writing() as writer:
                writer.delete_all_documents()
            self._max_id = 0

    def update_case(self, update: CaseUpdate) -> int:
        """Rewrite the case's documents from their stored fields (Tantivy has no partial update)."""
        with self._lock:
            searcher = self._index.searcher()
            query = tantivy.Query.term_query(self.schema, "case_ref", update.case_ref)
            total = _count(searcher.search(query, 1, count=True))
            if not total:
                return 0
            docs: list[IndexedDoc] = []
            offset = 0
            while offset < total:
                page = searcher.search(query, _UPDATE_PAGE, offset=offset, count=False).hits
                if not page:
                    break
                for _score, address in page:
                    docs.append(self._with_case(tq.indexed_doc(searcher.doc(address)), update))
                offset += len(page)
            with self.bulk():
                for start in range(0, len(docs), _UPDATE_PAGE):
                    self.index(docs[start:start + _UPDATE_PAGE])
            return len(docs)

    @staticmethod
    def _with_case(d: IndexedDoc, u: CaseUpdate) -> IndexedDoc:
        return IndexedDoc(
            document_id=d.document_id, item_id=d.item_id, case_ref=d.case_ref, customer_id=u.customer_id,
            customer_name=u.customer_name, title=d.title, text=d.text, channel=d.channel, doc_type=d.doc_type,
            received_at=d.received_at, case_status=u.case_status, teams=u.teams, restricted=u.restricted,
            sent_at=d.sent_at, captured_at=d.captured_at,
        )

    # -- reading ---------------------------------------------------------------------------------

    def search(self, query: SearchQuery, viewer: Viewer) -> SearchResult:
        q = query.checked()
        acl = viewer_acl(viewer)
        if acl == []:
            return SearchResult(total=0, hits=[], facets={})
        searcher = self._index.searcher()
        tree = parse(q.text)
        filters = tq.filters(self.schema, q, acl)
        main = tq.text_query(self.schema, tree, fuzzy=q.fuzzy)
        if q.like_document_id is not None:
            like = tq.more_like_this(self.schema, searcher, q.like_document_id, filters)
            if like is None:  # unknown, or not visible to this viewer: nothing to compare with
                return SearchResult(total=0, hits=[], facets={})
            main = like if main is None else tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, main), (tantivy.Occur.Must, like)])
        full = tq.combine(main, filters)
        cursor = decode_cursor(q.cursor, q.sort) if q.cursor else {"n": 0}
        seen = int(cursor["n"])
        limit = max(q.limit, 1)
        if q.sort == "date":
            paged = full
            if "k" in cursor:
                after = tantivy.Query.range_query(self.schema, "date_key", tantivy.FieldType.Unsigned,
                                                  upper_bound=int(cursor["k"]), include_upper=False)
                paged = tq.combine(full, [after])
            result = searcher.search(paged, limit, count=True, order_by_field="date_key",
                                     order=tantivy.Order.Desc)
            total = seen + _count(result)
        else:
            result = searcher.search(full, limit, count=True, offset=seen)
            total = _count(result)
        raw_hits = result.hits[: q.limit]
        highlight = tq.highlight_query(self.schema, positive_words(tree)) if q.snippets else None
        snippets = (tantivy.SnippetGenerator.create(searcher, highlight, self.schema, "text")
                    if highlight is not None else None)
        if snippets is not None:
            snippets.set_max_num_chars(SNIPPET_CHARS)
        hits: list[Hit] = []
        last_key = 0
        for value, address in raw_hits:
            doc = searcher.doc(address)
            hits.append(tq.hit(doc, score=None if q.sort == "date" else float(value),
                               snippet=self._snippet(doc, snippets) if q.snippets else ""))
            last_key = int(value) if q.sort == "date" else 0
        facets = tq.facets(searcher, full) if q.facets else {}
        next_seen = seen + len(hits)
        next_cursor = None
        if hits and next_seen < total:
            state: dict[str, Any] = {"s": q.sort, "n": next_seen}
            if q.sort == "date":
                state["k"] = last_key
            next_cursor = encode_cursor(state)
        return SearchResult(total=total, hits=hits, facets=facets, next_cursor=next_cursor)

    @staticmethod
    def _snippet(doc: tantivy.Document, generator: tantivy.SnippetGenerator | None) -> str:
        text = str(doc.get_first("text") or "")
        if generator is not None:
            snippet = generator.snippet_from_doc(doc)
            if snippet.highlighted():
                return str(snippet.to_html())
        return plain_snippet(text)

    def count(self) -> int:
        return int(self._index.searcher().num_docs)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                writer.rollback()
                del writer
