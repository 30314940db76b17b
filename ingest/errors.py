"""The root error of the ingest package.

What to do with an error is a class attribute, read in exactly three places: the HTTP
exception handler (``http_status``), the worker's dead-letter policy (``retryable``) and the
CLI exit code (``exit_code``).  Never match on message text.
"""

from __future__ import annotations


class IngestError(Exception):
    """Something went wrong while taking in or processing an item."""

    retryable: bool = False
    outage: bool = False  # a part is down (not this input): workers wait, never dead-letter
    http_status: int = 422
    exit_code: int = 1


class BadInput(IngestError):
    """The input itself is unusable (unreadable, corrupt, encrypted, too large); retrying will not help."""


class LimitExceeded(BadInput):
    """The input is over a configured limit (size, pages, ratio, depth, time)."""

    http_status = 413


class Unavailable(IngestError):
    """A part the pipeline depends on (bus, database, tool) is not answering; retry later."""

    retryable = True
    http_status = 503
    exit_code = 75  # EX_TEMPFAIL


class BusError(Unavailable):
    """The message bus could not publish, poll or commit."""

    outage = True


class BlobNotFound(IngestError):
    """A message refers to a blob that is not in the store (claim check broken)."""

    http_status = 404


class BlobStoreUnavailable(Unavailable):
    """The blob store (an S3-compatible object store) is not answering, is missing its bucket or
    refuses the credentials: nothing is wrong with the item; workers wait and retry."""

    outage = True


class BlobStoreRefused(IngestError):
    """The blob store refused one request for a reason that retrying will not change."""

    http_status = 502
