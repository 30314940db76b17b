"""The bus port: what every adapter (SQLite log, Kafka) promises.

Semantics follow Kafka's, and the contract tests in ``tests/ingest/test_bus_contract.py`` hold
both adapters to them:

* a topic has a fixed number of partitions; a record's partition is a hash of its key, so
  records with the same key keep their order;
* consumers in the same group split the topic's partitions between them;
* ``commit`` stores, per partition, the offset after the last record given; a consumer that
  starts (or restarts) in a group reads from the committed offset, so what was polled but not
  committed is delivered again;
* ``flush`` returns only when every published record is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

StartFrom = Literal["earliest", "latest"]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


class Consumer(Protocol):
    def poll(self, *, max_records: int = 100, timeout: float = 1.0) -> list[Record]:
        """Return up to ``max_records`` records from this consumer's partitions, waiting at most ``timeout`` s."""
        ...

    def commit(self, records: Sequence[Record]) -> None:
        """Commit, for each partition among ``records``, the offset after the highest one given.

        Call it only once everything the records led to is durable (publish, ``flush``, then
        commit). If the group has meanwhile given a partition to another member, that partition
        is not committed (logged, not raised): its new owner delivers those records again.
        """
        ...

    def close(self) -> None:
        """Leave the group; uncommitted records go to whoever takes the partitions next."""
        ...


class Bus(Protocol):
    def publish(self, topic: str, *, key: str, value: bytes) -> None:
        """Queue a record; it is durable once ``flush`` returns."""
        ...

    def flush(self) -> None:
        """Block until every published record is durable."""
        ...

    def consumer(self, topics: Sequence[str], *, group: str, start: StartFrom = "earliest") -> Consumer:
        """Join ``group`` on ``topics``; with no committed offset, read from ``start``."""
        ...

    def close(self) -> None: ...
