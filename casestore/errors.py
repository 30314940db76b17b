"""The root error of the casestore package.

What to do with an error is a class attribute, read in exactly three places: the HTTP
exception handler (``http_status``), the worker's dead-letter policy (``retryable``) and the
CLI exit code (``exit_code``).  Never match on message text.  Messages say what to do.
"""

from __future__ import annotations


class CaseStoreError(Exception):
    """Something went wrong reading or writing the case store."""

    retryable: bool = False
    outage: bool = False  # a part is down (not this input): workers wait, never dead-letter
    http_status: int = 400
    exit_code: int = 1


class NotFound(CaseStoreError):
    """The case, item, customer or user asked for does not exist."""

    http_status = 404


class Conflict(CaseStoreError):
    """The write clashes with what is already stored (it exists already, or changed meanwhile)."""

    http_status = 409


class InvalidInput(CaseStoreError):
    """The values given are unusable (bad email, unknown status, unknown customer); fix the input."""

    http_status = 422


class StoreUnavailable(CaseStoreError):
    """The database is not answering or is locked; retry later."""

    retryable = True
    outage = True
    http_status = 503
    exit_code = 75  # EX_TEMPFAIL
