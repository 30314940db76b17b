"""The root error of the ingest package.

What to do with an error is a class attribute, read in exactly three places: the HTTP
exception handler (``http_status``), the worker's dead-letter policy (``retryable``) and the
CLI exit code (``exit_code``).  Never match on message text.
"""

from __future__ import annotations

import errno
import sqlite3


class IngestError(Exception):
    """Something went wrong while taking in or processing an item."""

    retryable: bool = False
    outage: bool = False  # a part is down (not this input): workers wait, never dead-letter
    disk_full: bool = False  # no space to write: stop taking work (ingest) or pause until space returns (serve)
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


class DiskFull(Unavailable):
    """A file system the pipeline writes to (blobs, the SQLite bus) is full.  Nothing is wrong with
    the item and nothing written is lost: ``casework ingest`` stops taking work with this message
    and a re-run finishes the rest; ``casework serve``'s stages pause and retry until space returns."""

    outage = True
    disk_full = True

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        super().__init__(f"disk full at {where}: {detail}. Free space there and try again (the same "
                         "`casework ingest` finishes the rest): what was stored is kept")


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or its cause says "no space left": ENOSPC/EDQUOT from the OS or SQLITE_FULL
    (by code, never by message text)."""
    seen = 0
    while exc is not None and seen < 8:
        if getattr(exc, "disk_full", False):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


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
