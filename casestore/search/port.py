"""The search port: what the case store indexes, the one query model, and who may see what.

Three adapters implement ``SearchIndex`` (Tantivy embedded, OpenSearch, Elasticsearch) and pass
the same contract tests.  Semantics every adapter keeps:

* ``index(docs)`` is an upsert by ``document_id`` (re-indexing never duplicates) and is bulk:
  one Tantivy commit or one bulk request per call, never one per document.  What it wrote is
  searchable when it returns.
* Permissions are part of the query (``acl_tokens``), so hits, totals, facets, snippets and
  "more like this" only ever see documents the viewer may see:

  - admins and supervisors see everything;
  - everyone else sees documents whose case team is one of their teams, and documents whose
    case has no team and is not restricted;
  - documents filed in no case (triage, noise) have no team and are not restricted: they are
    the shared intake queue in the index;
  - a disabled viewer sees nothing.

  This is ``casestore.access`` rule 1 as an index filter.  The store's rule 4 is finer for
  triage items (one naming another team's case or customer is hidden from that team's
  outsiders): ``GET /api/v1/search`` drops such hits after asking the store
  (``access.items_hidden_from``), and corrects the total, but the facet counts may still
  include them.

* Free text: words are ANDed; ``OR``, ``AND``, ``NOT``/``-word``, parentheses and "quoted
  phrases" (see ``querytext``).  Words match the stemmed title, text and customer name;
  quoted phrases match the exact (unstemmed) sub-fields of title and text.
* The item's own date: ``sent_at`` (an email's Date header) and ``captured_at`` (a scan's capture
  time as the scanner recorded it) are indexed beside ``received_at`` (when casework got it).
  ``dated_from``/``dated_to`` keep documents whose own date (either of the two) falls in the
  range; documents without one are left out when the filter is set.
* Schema: ``SCHEMA_VERSION`` names the fields and analysis the adapters write.  An index written
  with an older version is brought up to date by ``casework reindex`` (Tantivy cannot add fields
  to an index: until then it refuses to open with ``SearchIndexOutdated``; the servers take the
  new fields into their mapping at once, and the reindex fills them for older documents).
* Sorting: relevance (score, then document id) or date (newest first, then document id).
  ``next_cursor`` continues after the last hit, past 10,000 hits.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from casestore.access.policy import SEES_ALL_CASES
from casestore.search.errors import InvalidSearch

SCHEMA_VERSION = 2  # 2: sent_at and captured_at (issue 11); 1: the first schema
FACET_FIELDS = ("channel", "doc_type", "case_status")
SEES_ALL_ROLES = SEES_ALL_CASES  # the index's ACL expresses casestore.access rule 1
PUBLIC_ACL = "public"
MAX_LIMIT = 1000
MAX_DOCUMENT_ID = 2**31 - 1  # documents.id is INTEGER: 32 bits on PostgreSQL (the index takes i64)
MAX_TEXT_CHARS = 500_000  # longer extracted text is indexed up to here (ES highlights refuse more than 1M)
SNIPPET_CHARS = 160

Sort = Literal["relevance", "date"]


@dataclass(frozen=True, slots=True)
class IndexedDoc:
    """One document as the index holds it (denormalised from item, case and customer)."""

    document_id: int
    item_id: str
    case_ref: str | None
    customer_id: str | None
    customer_name: str | None
    title: str
    text: str
    channel: str
    doc_type: str
    received_at: datetime
    case_status: str | None
    teams: tuple[str, ...] = ()  # empty: no team, visible to all unless restricted
    restricted: bool = False
    sent_at: datetime | None = None  # an email's own Date header
    captured_at: datetime | None = None  # a scan's capture time, as the scanner recorded it


@dataclass(frozen=True, slots=True)
class CaseUpdate:
    """New case-level values for every indexed document of ``case_ref``."""

    case_ref: str
    case_status: str
    teams: tuple[str, ...]
    restricted: bool
    customer_id: str | None
    customer_name: str | None


@dataclass(frozen=True, slots=True)
class Viewer:
    role: str
    teams: tuple[str, ...] = ()
    disabled: bool = False

    @property
    def sees_all(self) -> bool:
        return not self.disabled and self.role in SEES_ALL_ROLES


def acl_tokens(teams: Sequence[str], restricted: bool) -> list[str]:
    """What a document carries in its ``acl`` field: ``team:T`` per team, or ``public``."""
    if teams:
        return [f"team:{t}" for t in teams]
    return [] if restricted else [PUBLIC_ACL]


def viewer_acl(viewer: Viewer) -> list[str] | None:
    """The ``acl`` values the viewer may see; None means no filter (sees all); [] means nothing."""
    if viewer.disabled:
        return []
    if viewer.sees_all:
        return None
    return [PUBLIC_ACL, *(f"team:{t}" for t in viewer.teams)]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    channels: tuple[str, ...] = ()
    doc_types: tuple[str, ...] = ()
    case_statuses: tuple[str, ...] = ()
    customer_id: str | None = None
    case_ref: str | None = None
    date_from: datetime | None = None  # received_at >= date_from
    date_to: datetime | None = None  # received_at < date_to
    dated_from: datetime | None = None  # the item's own date (sent_at or captured_at) >= dated_from
    dated_to: datetime | None = None  # ... < dated_to
    fuzzy: bool = False  # words within an edit distance (0 up to 2 letters, 1 up to 5, else 2)
    sort: Sort = "relevance"
    limit: int = 20
    cursor: str | None = None
    like_document_id: int | None = None  # "more like this" document (must be visible to the viewer)
    facets: bool = True
    snippets: bool = True

    def checked(self) -> SearchQuery:
        if self.sort not in ("relevance", "date"):
            raise InvalidSearch(f"sort must be relevance or date, not {self.sort!r}")
        if not 0 <= self.limit <= MAX_LIMIT:
            raise InvalidSearch(f"limit must be between 0 and {MAX_LIMIT}, not {self.limit}")
        if self.dated_from is not None and self.dated_to is not None and self.dated_from >= self.dated_to:
            raise InvalidSearch("dated_from must be before dated_to")
        if self.like_document_id is not None and not 1 <= self.like_document_id <= MAX_DOCUMENT_ID:
            raise InvalidSearch(
                f"like must be a document id between 1 and {MAX_DOCUMENT_ID}, not {self.like_document_id}"
            )
        return self


@dataclass(frozen=True, slots=True)
class Hit:
    document_id: int
    item_id: str
    case_ref: str | None
    title: str
    snippet: str  # HTML-escaped text, matches wrapped in <b>...</b>
    score: float | None  # None when sorted by date
    received_at: datetime
    channel: str
    doc_type: str
    case_status: str | None
    customer_id: str | None
    sent_at: datetime | None = None
    captured_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    next_cursor: str | None = None


class SearchIndex(Protocol):
    """Full-text search over the case store's documents (see the module docstring)."""

    def index(self, docs: Sequence[IndexedDoc]) -> None:
        """Add or replace these documents, in one bulk write; searchable on return."""
        ...

    def delete(self, document_ids: Sequence[int]) -> None:
        """Remove these documents (unknown ids are ignored)."""
        ...

    def search(self, query: SearchQuery, viewer: Viewer) -> SearchResult:
        """The documents ``viewer`` may see that match ``query``."""
        ...

    def update_case(self, update: CaseUpdate) -> int:
        """Set the case-level fields of every document of ``update.case_ref``; how many changed."""
        ...

    def clear(self) -> None:
        """Remove every document (a rebuild from the store starts here)."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """Many ``index`` calls in a row (reindex, import): keep the writer or connection busy."""
        ...

    def close(self) -> None: ...


# -- helpers shared by the adapters -------------------------------------------------------------

def epoch_seconds(value: datetime) -> int:
    """Whole seconds since 1970 (UTC), never negative: the date sort key."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return max(0, int(aware.timestamp()))


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidSearch("cursor is not one this server handed out; start again without it") from None
    if not isinstance(data, dict) or data.get("s") != sort or not isinstance(data.get("n"), int):
        raise InvalidSearch("cursor does not belong to this sort order; start again without it")
    return data


def fuzzy_distance(word: str) -> int:
    """Edit distance for a fuzzy word, as Elasticsearch's ``fuzziness: AUTO``."""
    n = len(word)
    return 0 if n <= 2 else 1 if n <= 5 else 2


def plain_snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of ``text`` as an HTML-escaped snippet without highlights (nothing matched in it)."""
    short = " ".join(text[: limit * 2].split())[:limit]
    return html.escape(short, quote=False)
