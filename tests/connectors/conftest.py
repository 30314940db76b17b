"""Fixtures for the connector tests: a real SqliteBus and blob store, and a private metrics registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.metrics import Registry
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from ingest.messages import TOPIC_RAW, RawItem, decode
from tests.ports import free_port  # noqa: F401 - imported from here by other test modules


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[SqliteBus]:
    b = SqliteBus(tmp_path / "bus.db", partitions=2)
    yield b
    b.close()


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def registry() -> Registry:
    return Registry()


def raw_items(bus: SqliteBus) -> list[RawItem]:
    """Everything on intake.raw, read by a fresh consumer group (publish order within a partition)."""
    consumer = bus.consumer([TOPIC_RAW], group=f"test-{time.monotonic_ns()}")
    try:
        out: list[RawItem] = []
        while records := consumer.poll(max_records=1000, timeout=0.2):
            out += [decode(TOPIC_RAW, r.value) for r in records]
        return out
    finally:
        consumer.close()


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


