"""The root error of the casestore package.

What to do with an error is a class attribute, read in exactly three places: the HTTP
exception handler (``http_status``), the worker's dead-letter policy (``retryable``) and the
CLI exit code (``exit_code``).  Never match on message text.  Messages say what to do.
"""

from __future__ import annotations


class CaseStoreError(Exception):
    """Something went wrong reading or writing the case store."""

    retryable: bool = False
    disk_full: bool = False  # no space to write: stop taking work, or pause until space returns
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


class StoreDiskFull(StoreUnavailable):
    """The case store's disk is full (SQLITE_FULL, PostgreSQL's disk_full): nothing is wrong with
    the work; it waits (serve) or stops with this message (ingest) until space returns."""

    disk_full = True


class Forbidden(CaseStoreError):
    """The actor's role or teams do not allow this (a queue of another team, an override by an agent)."""

    http_status = 403
