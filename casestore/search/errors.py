"""Errors of the search index; part of the casestore package, so they derive from its root error."""

from __future__ import annotations

from casestore.errors import CaseStoreError


class SearchError(CaseStoreError):
    """The search index could not do what was asked."""

    http_status = 500


class SearchUnavailable(SearchError):
    """The index is busy (another process holds the Tantivy writer) or the search server is down; retry."""

    retryable = True
    outage = True
    http_status = 503
    exit_code = 75


class InvalidSearch(SearchError):
    """The query, filter or cursor is unusable; fix the request."""

    http_status = 422
