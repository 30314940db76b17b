"""The query model as OpenSearch/Elasticsearch query DSL, shared by both server adapters.

Analysis mirrors the Tantivy adapter: ``cw_text`` (standard tokenizer, lower case, Snowball
English stemmer) for title, text and customer name, and ``cw_exact`` (no stemming) for the
``exact`` sub-fields that quoted phrases search.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from casestore.search.port import (
    FACET_FIELDS,
    SCHEMA_VERSION,
    SNIPPET_CHARS,
    Hit,
    IndexedDoc,
    SearchQuery,
    acl_tokens,
    epoch_seconds,
    plain_snippet,
)
from casestore.search.querytext import And, Node, Not, Or, Phrase, Word, positive_words

WORD_FIELDS = ["title^2", "text", "customer_name"]
PHRASE_FIELDS = ["title.exact", "text.exact"]
FACET_SIZE = 100
MLT_MAX_TERMS = 25

_TEXT = {"type": "text", "analyzer": "cw_text", "fields": {"exact": {"type": "text", "analyzer": "cw_exact"}}}
_KEYWORD = {"type": "keyword"}

INDEX_BODY: dict[str, Any] = {
    "settings": {
        "number_of_shards": 1,
        "analysis": {
            "filter": {"cw_stem": {"type": "snowball", "language": "English"}},
            "analyzer": {
                "cw_text": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "cw_stem"]},
                "cw_exact": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]},
            },
        },
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "document_id": {"type": "long"},
            "item_id": _KEYWORD,
            "case_ref": _KEYWORD,
            "customer_id": _KEYWORD,
            "customer_name": {"type": "text", "analyzer": "cw_text"},
            "title": _TEXT,
            "text": _TEXT,
            "channel": _KEYWORD,
            "doc_type": _KEYWORD,
            "case_status": _KEYWORD,
            "teams": _KEYWORD,
            "acl": _KEYWORD,
            "restricted": {"type": "boolean"},
            "received_at": {"type": "date"},
            "received_ts": {"type": "long"},
            "sent_at": {"type": "date"},
            "captured_at": {"type": "date"},
        },
        "_meta": {"casework_schema_version": SCHEMA_VERSION},
    },
}
ADDED_IN: dict[int, tuple[str, ...]] = {2: ("sent_at", "captured_at")}  # fields each schema version added

SOURCE_FIELDS = ["document_id", "item_id", "case_ref", "customer_id", "title", "channel", "doc_type",
                 "case_status", "received_at", "sent_at", "captured_at"]


def source(d: IndexedDoc) -> dict[str, Any]:
    return {
        "document_id": d.document_id, "item_id": d.item_id, "case_ref": d.case_ref,
        "customer_id": d.customer_id, "customer_name": d.customer_name, "title": d.title, "text": d.text,
        "channel": d.channel, "doc_type": d.doc_type, "case_status": d.case_status, "teams": list(d.teams),
        "acl": acl_tokens(d.teams, d.restricted), "restricted": d.restricted,
        "received_at": _iso(d.received_at), "received_ts": epoch_seconds(d.received_at),
        "sent_at": _iso(d.sent_at) if d.sent_at else None,
        "captured_at": _iso(d.captured_at) if d.captured_at else None,
    }


def _between(start: datetime | None, end: datetime | None) -> dict[str, str]:
    """A range query's bounds: from ``start`` (inclusive) to ``end`` (exclusive)."""
    bounds: dict[str, str] = {}
    if start is not None:
        bounds["gte"] = _iso(start)
    if end is not None:
        bounds["lt"] = _iso(end)
    return bounds


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


_MATCH_ALL: dict[str, Any] = {"match_all": {}}


def _word(text: str, fuzzy: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"query": text, "fields": WORD_FIELDS, "type": "best_fields", "operator": "and"}
    if fuzzy:
        body["fuzziness"] = "AUTO"
    return {"multi_match": body}


def text_query(node: Node | None, *, fuzzy: bool) -> dict[str, Any] | None:
    if node is None:
        return None
    if isinstance(node, Word):
        return _word(node.text, fuzzy)
    if isinstance(node, Phrase):
        return {"multi_match": {"query": node.text, "fields": PHRASE_FIELDS, "type": "phrase"}}
    if isinstance(node, Not):
        inner = text_query(node.node, fuzzy=fuzzy)
        return None if inner is None else {"bool": {"must": [_MATCH_ALL], "must_not": [inner]}}
    if isinstance(node, Or):
        branches = [q for child in node.nodes if (q := text_query(child, fuzzy=fuzzy)) is not None]
        if not branches:
            return None
        return branches[0] if len(branches) == 1 else {"bool": {"should": branches, "minimum_should_match": 1}}
    assert isinstance(node, And)
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for child in node.nodes:
        target, inner_node = (must_not, child.node) if isinstance(child, Not) else (must, child)
        q = text_query(inner_node, fuzzy=fuzzy)
        if q is not None:
            target.append(q)
    if not must and not must_not:
        return None
    if len(must) == 1 and not must_not:
        return must[0]
    return {"bool": {"must": must or [_MATCH_ALL], "must_not": must_not}}


def filters(q: SearchQuery, acl: list[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if acl is not None:
        out.append({"terms": {"acl": acl}})
    for name, values in (("channel", q.channels), ("doc_type", q.doc_types), ("case_status", q.case_statuses)):
        if values:
            out.append({"terms": {name: list(values)}})
    if q.customer_id:
        out.append({"term": {"customer_id": q.customer_id}})
    if q.case_ref:
        out.append({"term": {"case_ref": q.case_ref}})
    if q.date_from is not None or q.date_to is not None:
        out.append({"range": {"received_at": _between(q.date_from, q.date_to)}})
    if q.dated_from is not None or q.dated_to is not None:
        own = _between(q.dated_from, q.dated_to)
        out.append({"bool": {"should": [{"range": {"sent_at": own}}, {"range": {"captured_at": own}}],
                             "minimum_should_match": 1}})
    return out


def more_like_this(index: str, document_id: int) -> dict[str, Any]:
    return {"more_like_this": {
        "fields": ["title", "text"], "like": [{"_index": index, "_id": str(document_id)}],
        "min_term_freq": 1, "min_doc_freq": 1, "max_query_terms": MLT_MAX_TERMS,
        "minimum_should_match": "30%",
    }}


def combine(main: dict[str, Any] | None, filter_clauses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not filter_clauses:
        return main or _MATCH_ALL
    return {"bool": {"must": [main or _MATCH_ALL], "filter": list(filter_clauses)}}


def sort_clause(sort: str) -> list[dict[str, Any]]:
    if sort == "date":
        return [{"received_ts": {"order": "desc"}}, {"document_id": {"order": "desc"}}]
    return [{"_score": {"order": "desc"}}, {"document_id": {"order": "asc"}}]


def highlight(tree: Node | None) -> dict[str, Any]:
    words = positive_words(tree)
    field: dict[str, Any] = {"fragment_size": SNIPPET_CHARS, "number_of_fragments": 1, "no_match_size": SNIPPET_CHARS}
    if words:  # phrases search text.exact: mark their words in text as well
        field["highlight_query"] = {"match": {"text": {"query": " ".join(words)}}}
    return {"encoder": "html", "pre_tags": ["<b>"], "post_tags": ["</b>"], "fields": {"text": field}}


def aggregations() -> dict[str, Any]:
    return {name: {"terms": {"field": name, "size": FACET_SIZE}} for name in FACET_FIELDS}


def parse_facets(body: dict[str, Any]) -> dict[str, dict[str, int]]:
    aggs = body.get("aggregations") or {}
    return {
        name: {str(b["key"]): int(b["doc_count"]) for b in (aggs.get(name) or {}).get("buckets", [])}
        for name in FACET_FIELDS
    }


def _maybe_date(value: Any) -> datetime | None:
    return None if value in (None, "") else _parse_date(value)


def _parse_date(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_hit(raw: dict[str, Any], *, with_score: bool, with_snippet: bool) -> Hit:
    src = raw.get("_source") or {}
    fragments = ((raw.get("highlight") or {}).get("text") or [])
    snippet = ""
    if with_snippet:
        snippet = str(fragments[0]) if fragments else plain_snippet(str(src.get("title") or ""))
    score = raw.get("_score")
    return Hit(
        document_id=int(src.get("document_id") or raw.get("_id") or 0), item_id=str(src.get("item_id") or ""),
        case_ref=src.get("case_ref"), title=str(src.get("title") or ""), snippet=snippet,
        score=float(score) if with_score and score is not None else None,
        received_at=_parse_date(src.get("received_at")), channel=str(src.get("channel") or ""),
        doc_type=str(src.get("doc_type") or ""), case_status=src.get("case_status"),
        customer_id=src.get("customer_id"), sent_at=_maybe_date(src.get("sent_at")),
        captured_at=_maybe_date(src.get("captured_at")),
    )
