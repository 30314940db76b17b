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


class SearchIndexOutdated(SearchError):
    """The index was written with an older schema than this casework writes; run ``casework reindex``.

    Not retryable on its own: a worker that meets it waits as for an outage (the index cannot take
    writes until an operator rebuilds it), so nothing is dead-lettered meanwhile.
    """

    outage = True
    http_status = 503
    exit_code = 78  # EX_CONFIG: the installation needs a step before it can run
