"""The pages' queue counts: fresh ones served as they are, stale ones served while one background
read runs, missing ones read at once; 0 turns the cache off."""

from __future__ import annotations

import threading

from api.web.counts_cache import CountsCache


class Reads:
    """A read that counts its calls; ``gate`` holds a background read until the test lets it go."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self.done = threading.Event()

    def __call__(self) -> int:
        self.gate.wait(30)
        self.calls += 1
        self.done.set()
        return self.calls


def test_fresh_stale_and_missing() -> None:
    now = [100.0]
    cache: CountsCache[int] = CountsCache(10, clock=lambda: now[0])
    reads = Reads()
    assert cache.get("agents of claims", reads).value == 1, "missing: read now"
    now[0] += 9
    assert cache.get("agents of claims", reads).value == 1 and reads.calls == 1, "fresh: no read"
    assert cache.get("supervisors", reads).value == 2, "another key, its own read"

    now[0] += 2  # "agents of claims" is 11 s old: stale
    reads.gate.clear()
    reads.done.clear()
    assert cache.get("agents of claims", reads).value == 1, "stale: served at once"
    assert cache.get("agents of claims", reads).value == 1, "and again, with one read running"
    reads.gate.set()
    assert reads.done.wait(30)
    assert reads.calls == 3, "one background read, not one per page"
    while cache._refreshing:  # the reader thread marks itself done right after storing
        threading.Event().wait(0.01)
    assert cache.get("agents of claims", reads).value == 3


def test_a_failed_background_read_keeps_the_older_counts() -> None:
    now = [0.0]
    cache: CountsCache[int] = CountsCache(5, clock=lambda: now[0])
    assert cache.get("k", lambda: 7).value == 7
    now[0] += 6
    failed = threading.Event()

    def broken() -> int:
        failed.set()
        raise RuntimeError("database is locked")

    assert cache.get("k", broken).value == 7
    assert failed.wait(30)
    while cache._refreshing:
        threading.Event().wait(0.01)
    assert cache.get("k", lambda: 8).value == 7, "the next page is served the older counts and starts a read"
    while cache._refreshing:
        threading.Event().wait(0.01)
    assert cache.get("k", lambda: 9).value == 8


def test_zero_reads_every_time() -> None:
    cache: CountsCache[int] = CountsCache(0)
    reads = Reads()
    assert [cache.get("k", reads).value for _ in range(3)] == [1, 2, 3]
