"""Queue counts for the workbench pages, at most ``CASEWORK_WEB__QUEUE_COUNTS_MAX_AGE_S`` old.

Counting a queue's open, at-risk and breached tasks reads every open task of the queue (with the
viewer's access rule applied to each task's case): milliseconds for thousands of tasks, a second
or more on SQLite for hundreds of thousands.  The pages call the same service as
``GET /api/v1/queues`` (``queue_reads.queue_summaries``, through ``api.queue_routes.queue_list``)
but keep its answer for a while, per what the answer depends on (sees every case or not, teams,
the queues asked for):

- fresh (younger than the maximum age): served as it is;
- stale: served as it is while one background thread reads it again (so no page waits for a
  count, and one read at a time runs per key);
- missing (the first page of a kind since the process started): read now.

The pages say when the counts were read.  ``max_age_s`` 0 turns the cache off (tests that assert
counts right after a change use that).  The REST route always counts afresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from casestore.models import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_KEYS = 512


@dataclass(frozen=True)
class Counted(Generic[T]):
    value: T
    read_at: datetime  # when the value was read (what the page shows)
    monotonic: float


class CountsCache(Generic[T]):
    def __init__(self, max_age_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, Counted[T]] = OrderedDict()
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()

    def get(self, key: Hashable, read: Callable[[], T]) -> Counted[T]:
        """The value for ``key``: fresh, stale while a background read runs, or read now."""
        if self.max_age_s <= 0:
            return Counted(read(), utcnow(), self._clock())
        with self._lock:
            found = self._entries.get(key)
            stale = found is not None and self._clock() - found.monotonic >= self.max_age_s
            start = stale and key not in self._refreshing
            if start:
                self._refreshing.add(key)
        if found is None:
            return self._store(key, read)
        if start:
            threading.Thread(target=self._refresh, args=(key, read), name="queue-counts", daemon=True).start()
        return found

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s value: the next page reads it now (after the person changed it themselves)."""
        with self._lock:
            self._entries.pop(key, None)

    def _store(self, key: Hashable, read: Callable[[], T]) -> Counted[T]:
        counted = Counted(read(), utcnow(), self._clock())
        with self._lock:
            self._entries[key] = counted
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_KEYS:
                self._entries.popitem(last=False)
        return counted

    def _refresh(self, key: Hashable, read: Callable[[], T]) -> None:
        try:
            self._store(key, read)
        except Exception:  # the stale value stays; the next page asks again
            log.exception("reading queue counts for %s failed; the pages keep the older counts", key)
        finally:
            with self._lock:
                self._refreshing.discard(key)
