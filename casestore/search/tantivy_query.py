"""Translating the query model into Tantivy queries, and Tantivy documents back into hits."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import tantivy

from casestore.search.port import FACET_FIELDS, Hit, IndexedDoc, SearchQuery, fuzzy_distance
from casestore.search.querytext import Node, Not, Or, Phrase, Word

STEMMED = "cw_stemmed"
EXACT = "cw_exact"
WORD_FIELDS = (("title", 2.0), ("text", 1.0), ("customer_name", 1.0))
PHRASE_FIELDS = ("title_exact", "text_exact")
MAX_TOKEN_CHARS = 40
FACET_SIZE = 100
MLT_MAX_TERMS = 25
MLT_MIN_MATCH = 0.3
MLT_CANDIDATES = 500
MLT_MAX_CHARS = 100_000

Occur = tantivy.Occur
Query = tantivy.Query


def _analyzer(stem: bool) -> tantivy.TextAnalyzer:
    builder = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
               .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
               .filter(tantivy.Filter.lowercase()))
    if stem:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


STEMMED_ANALYZER = _analyzer(True)
EXACT_ANALYZER = _analyzer(False)


def register_analyzers(index: tantivy.Index) -> None:
    index.register_tokenizer(STEMMED, STEMMED_ANALYZER)
    index.register_tokenizer(EXACT, EXACT_ANALYZER)


def _any(queries: list[Query]) -> Query | None:
    if not queries:
        return None
    return queries[0] if len(queries) == 1 else Query.boolean_query([(Occur.Should, q) for q in queries])


def _all(queries: list[Query]) -> Query | None:
    if not queries:
        return None
    return queries[0] if len(queries) == 1 else Query.boolean_query([(Occur.Must, q) for q in queries])


def _word(schema: tantivy.Schema, text: str, fuzzy: bool) -> Query | None:
    per_token: list[Query] = []
    for token in STEMMED_ANALYZER.analyze(text):
        distance = fuzzy_distance(token) if fuzzy else 0
        fields: list[Query] = []
        for field, boost in WORD_FIELDS:
            q = (Query.fuzzy_term_query(schema, field, token, distance=distance, transposition_cost_one=True)
                 if distance else Query.term_query(schema, field, token))
            fields.append(Query.boost_query(q, boost) if boost != 1.0 else q)
        per_token.append(Query.disjunction_max_query(fields))
    return _all(per_token)


def _phrase(schema: tantivy.Schema, text: str) -> Query | None:
    tokens = EXACT_ANALYZER.analyze(text)
    if not tokens:
        return None
    if len(tokens) == 1:
        return _any([Query.term_query(schema, f, tokens[0]) for f in PHRASE_FIELDS])
    return _any([Query.phrase_query(schema, f, list(tokens)) for f in PHRASE_FIELDS])


def _negated(inner: Query) -> Query:
    return Query.boolean_query([(Occur.Must, Query.all_query()), (Occur.MustNot, inner)])


def text_query(schema: tantivy.Schema, node: Node | None, *, fuzzy: bool) -> Query | None:
    """The query for a parsed free text; None matches everything."""
    if node is None:
        return None
    if isinstance(node, Word):
        return _word(schema, node.text, fuzzy)
    if isinstance(node, Phrase):
        return _phrase(schema, node.text)
    if isinstance(node, Not):
        inner = text_query(schema, node.node, fuzzy=fuzzy)
        return None if inner is None else _negated(inner)
    if isinstance(node, Or):
        branches = [q for child in node.nodes if (q := text_query(schema, child, fuzzy=fuzzy)) is not None]
        return _any(branches)
    clauses: list[tuple[tantivy.Occur, Query]] = []
    for child in node.nodes:
        if isinstance(child, Not):
            inner = text_query(schema, child.node, fuzzy=fuzzy)
            if inner is not None:
                clauses.append((Occur.MustNot, inner))
        elif (q := text_query(schema, child, fuzzy=fuzzy)) is not None:
            clauses.append((Occur.Must, q))
    if not clauses:
        return None
    if all(occur == Occur.MustNot for occur, _ in clauses):
        clauses.insert(0, (Occur.Must, Query.all_query()))
    return clauses[0][1] if len(clauses) == 1 and clauses[0][0] == Occur.Must else Query.boolean_query(clauses)


def _terms(schema: tantivy.Schema, field: str, values: Sequence[str]) -> Query:
    return Query.term_set_query(schema, field, list(values))


def filters(schema: tantivy.Schema, q: SearchQuery, acl: list[str] | None) -> list[Query]:
    """Filter clauses (no score): permissions first, then the query's filters."""
    out: list[Query] = []
    if acl is not None:
        out.append(_terms(schema, "acl", acl))
    for field, values in (("channel", q.channels), ("doc_type", q.doc_types), ("case_status", q.case_statuses)):
        if values:
            out.append(_terms(schema, field, values))
    if q.customer_id:
        out.append(Query.term_query(schema, "customer_id", q.customer_id))
    if q.case_ref:
        out.append(Query.term_query(schema, "case_ref", q.case_ref))
    if q.date_from is not None or q.date_to is not None:
        out.append(_date_range(schema, "received_at", q.date_from, q.date_to))
    if q.dated_from is not None or q.dated_to is not None:
        out.append(_any([_date_range(schema, name, q.dated_from, q.dated_to) for name in ("sent_at", "captured_at")])
                   or Query.empty_query())
    return out


def _date_range(schema: tantivy.Schema, field: str, lower: datetime | None, upper: datetime | None) -> Query:
    """``lower <= field < upper``; a missing bound is open (Tantivy wants an open side inclusive)."""
    return Query.range_query(schema, field, tantivy.FieldType.Date, lower_bound=lower, upper_bound=upper,
                             include_lower=True, include_upper=upper is None)


def combine(main: Query | None, filter_queries: Sequence[Query]) -> Query:
    clauses: list[tuple[tantivy.Occur, Query]] = [(Occur.Must, main if main is not None else Query.all_query())]
    clauses.extend((Occur.Must, Query.const_score_query(f, 0.0)) for f in filter_queries)
    return clauses[0][1] if len(clauses) == 1 else Query.boolean_query(clauses)


def more_like_this(schema: tantivy.Schema, searcher: tantivy.Searcher, document_id: int,
                   filter_queries: Sequence[Query]) -> Query | None:
    """Documents like ``document_id`` (itself excluded); None if the viewer may not see it.

    Built here rather than with Tantivy's MoreLikeThisQuery, which panics when deleted
    documents still count in a term's document frequency.  As Elasticsearch's
    ``more_like_this``: the source's ``MLT_MAX_TERMS`` best terms by tf-idf, 30% must match.
    """
    own = Query.term_query(schema, "document_id", document_id)
    found = searcher.search(combine(own, filter_queries), 1).hits
    if not found:
        return None
    source = searcher.doc(found[0][1])
    text = f"{source.get_first('title') or ''} {source.get_first('text') or ''}"[:MLT_MAX_CHARS]
    counts = Counter(STEMMED_ANALYZER.analyze(text)).most_common(MLT_CANDIDATES)
    total = max(int(searcher.num_docs), 1)
    scored: list[tuple[float, str]] = []
    for term, tf in counts:
        df = min(int(searcher.doc_freq("text", term)), total)
        if df:
            scored.append((tf * math.log(1 + (total - df + 0.5) / (df + 0.5)), term))
    best = [term for _score, term in sorted(scored, reverse=True)[:MLT_MAX_TERMS]]
    if not best:
        return Query.empty_query()
    should = [(Occur.Should, Query.disjunction_max_query(
        [Query.term_query(schema, "text", t), Query.term_query(schema, "title", t)])) for t in best]
    like = Query.boolean_query(should, minimum_number_should_match=max(1, int(len(best) * MLT_MIN_MATCH)))
    return Query.boolean_query([(Occur.Must, like), (Occur.MustNot, own)])


def highlight_query(schema: tantivy.Schema, words: Sequence[str]) -> Query | None:
    """Terms to mark in the text field: every positive word and phrase word, stemmed."""
    tokens = dict.fromkeys(t for w in words for t in STEMMED_ANALYZER.analyze(w))
    return _any([Query.term_query(schema, "text", t) for t in tokens])


def facets(searcher: tantivy.Searcher, query: Query) -> dict[str, dict[str, int]]:
    aggs = {name: {"terms": {"field": name, "size": FACET_SIZE}} for name in FACET_FIELDS}
    result: dict[str, Any] = searcher.aggregate(query, aggs)
    return {
        name: {str(b["key"]): int(b["doc_count"]) for b in result.get(name, {}).get("buckets", [])}
        for name in FACET_FIELDS
    }


def _str(doc: tantivy.Document, name: str) -> str | None:
    value = doc.get_first(name)
    return None if value is None else str(value)


def _date(doc: tantivy.Document) -> datetime:
    return _maybe_date(doc, "received_at") or datetime(1970, 1, 1, tzinfo=UTC)


def _maybe_date(doc: tantivy.Document, name: str) -> datetime | None:
    value = doc.get_first(name)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def hit(doc: tantivy.Document, *, score: float | None, snippet: str) -> Hit:
    return Hit(
        document_id=int(doc.get_first("document_id") or 0), item_id=_str(doc, "item_id") or "",
        case_ref=_str(doc, "case_ref"), title=_str(doc, "title") or "", snippet=snippet, score=score,
        received_at=_date(doc), channel=_str(doc, "channel") or "", doc_type=_str(doc, "doc_type") or "",
        case_status=_str(doc, "case_status"), customer_id=_str(doc, "customer_id"),
        sent_at=_maybe_date(doc, "sent_at"), captured_at=_maybe_date(doc, "captured_at"),
    )


def indexed_doc(doc: tantivy.Document) -> IndexedDoc:
    """The ``IndexedDoc`` a stored Tantivy document was made from."""
    return IndexedDoc(
        document_id=int(doc.get_first("document_id") or 0), item_id=_str(doc, "item_id") or "",
        case_ref=_str(doc, "case_ref"), customer_id=_str(doc, "customer_id"),
        customer_name=_str(doc, "customer_name"), title=_str(doc, "title") or "", text=_str(doc, "text") or "",
        channel=_str(doc, "channel") or "", doc_type=_str(doc, "doc_type") or "", received_at=_date(doc),
        case_status=_str(doc, "case_status"), teams=tuple(str(t) for t in doc.get_all("teams")),
        restricted=bool(doc.get_first("restricted")), sent_at=_maybe_date(doc, "sent_at"),
        captured_at=_maybe_date(doc, "captured_at"),
    )
