"""The production bus adapter: Kafka through kafka-python.

Kafka already has the semantics the port promises; this module only maps the port onto
kafka-python's producer, consumer and admin client, creates topics on first use, and turns
kafka-python's errors into ``ingest.errors.BusError`` with a message that says what to check.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import (
    CommitFailedError,
    KafkaError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from ingest.bus.port import Record, StartFrom
from ingest.errors import BusError

log = logging.getLogger(__name__)

PRODUCER_LINGER_MS = 100
PRODUCER_BATCH_BYTES = 1 << 20  # per partition; a batch of 100 extracted emails fits
# How long the broker may hold a fetch that finds nothing new.  With ``fetch_min_bytes`` 1 it answers
# as soon as a record arrives, so this is not a delay: it only sets how often an idle consumer asks
# again.  kafka-python's 500 ms cost each idle worker ~3.5 ms CPU a second in its IO thread (two
# fetch round trips), which a run pays per second of wall time, not per item (issue 13).
CONSUMER_FETCH_MAX_WAIT_MS = 2000


class KafkaBus:
    """The bus on a Kafka cluster; what it guarantees is what ``ingest.bus.port`` promises.

    * Records are keyed by the UTF-8 key (Kafka's default murmur2 partitioner), produced with
      ``acks="all"`` and the idempotent producer, so one key's records keep their order.
    * A topic that does not exist is created with ``partitions`` partitions (and
      ``replication_factor``) before this bus first publishes to it or consumes from it.
    * ``flush`` returns when every record published so far is acknowledged, and raises
      ``BusError`` if any of them failed.
    * Consumers never auto-commit; ``commit`` is synchronous. Group membership, partition
      assignment and rebalancing are Kafka's (``session_timeout_ms``, ``heartbeat_interval_ms``).

    The producer and the admin client are created on first use and shared by all threads.
    kafka-python's own client metrics are off (``metrics_enabled=False``): nothing reads them
    (casework's series are its own, ``ingest.stage_metrics`` and ``ingest.bus.lag``), and
    recording them cost CPU on every record and request (issue 13's cost per item).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        partitions: int = 4,
        client_id: str = "casework",
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 3000,
        replication_factor: int = 1,
        bootstrap_timeout_ms: int = 30000,
        max_poll_interval_ms: int = 300000,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.replication_factor = replication_factor
        self.bootstrap_timeout_ms = bootstrap_timeout_ms
        self.max_poll_interval_ms = max_poll_interval_ms  # longest handling of one polled batch
        self._lock = threading.Lock()
        self._producer: Any = None
        self._admin: Any = None
        self._known_topics: set[str] = set()
        self._pending: list[Any] = []  # futures of records sent since the last flush
        self._consumers: weakref.WeakSet[KafkaBusConsumer] = weakref.WeakSet()
        self._closed = False

    @contextmanager
    def _errors(self, doing: str, topic: str | None = None) -> Iterator[None]:
        try:
            yield
        except KafkaError as exc:
            where = f" on topic {topic}" if topic else ""
            raise BusError(
                f"Kafka at {self.bootstrap_servers}: could not {doing}{where}: {exc!r}. Check the broker "
                f"address in the bus URL, that the brokers are up and reachable from here"
                + (f", and that topic {topic} exists or may be created by this client" if topic else "")
                + "."
            ) from exc

    def _common(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
        }

    def _producer_client(self) -> Any:
        with self._lock:
            if self._producer is None:
                with self._errors("connect the producer"):
                    # linger: records published between two flushes travel in one produce request
                    # per partition instead of one each (``flush`` sends at once, so no record waits
                    # for the linger: every publisher flushes); kafka-python's default is 0.
                    self._producer = KafkaProducer(**self._common(), acks="all", linger_ms=PRODUCER_LINGER_MS,
                                                   batch_size=PRODUCER_BATCH_BYTES, metrics_enabled=False)
            return self._producer

    def _admin_client(self) -> Any:
        """The admin client, created on first use; call with ``self._lock`` held."""
        if self._admin is None:
            with self._errors("connect the admin client"):
                self._admin = KafkaAdminClient(**self._common())
        return self._admin

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create each topic not seen yet with this bus's partition count; existing ones are left as they are."""
        missing = [topic for topic in topics if topic not in self._known_topics]
        if not missing:
            return
        with self._lock:
            admin = self._admin_client()
            for topic in missing:
                spec = {"num_partitions": self.partitions, "replication_factor": self.replication_factor}
                with self._errors("create the topic", topic):
                    try:
                        admin.create_topics({topic: spec}, wait_for_metadata=True)
                        log.info("created Kafka topic %s with %d partitions", topic, self.partitions)
                    except TopicAlreadyExistsError:
                        log.debug("Kafka topic %s exists already", topic)
                self._known_topics.add(topic)

    # -- the Bus port ----------------------------------------------------------------------

    def publish(self, topic: str, *, key: str, value: bytes) -> None:
        """Hand a record to the producer; it is durable once ``flush`` returns."""
        if self._closed:
            raise BusError(f"Kafka bus {self.bootstrap_servers} is closed")
        self.ensure_topics([topic])
        producer = self._producer_client()
        with self._errors("publish", topic):
            future = producer.send(topic, key=key.encode("utf-8"), value=bytes(value))
        with self._lock:
            self._pending.append(future)

    def flush(self) -> None:
        """Block until every record published so far is acknowledged by all in-sync replicas."""
        with self._lock:
            producer, pending, self._pending = self._producer, self._pending, []
        if producer is None:
            return
        with self._errors("flush the producer"):
            producer.flush()
        failed = [future.exception for future in pending if future.failed()]
        if failed:
            raise BusError(
                f"Kafka at {self.bootstrap_servers}: {len(failed)} of {len(pending)} records were not "
                f"acknowledged, first error: {failed[0]!r}. Check the broker address, that the brokers "
                f"are up, and the topic's replication (acks=all)."
            ) from failed[0]

    def consumer(self, topics: Sequence[str], *, group: str, start: StartFrom = "earliest") -> KafkaBusConsumer:
        """Subscribe a new group member to ``topics``; it joins the group on its first ``poll``."""
        if self._closed:
            raise BusError(f"Kafka bus {self.bootstrap_servers} is closed")
        if isinstance(topics, str) or not topics:
            raise ValueError("topics must be a non-empty sequence of topic names")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        self.ensure_topics(topics)
        with self._errors(f"join consumer group {group}", ",".join(topics)):
            client = KafkaConsumer(
                *topics,
                **self._common(),
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset=start,
                session_timeout_ms=self.session_timeout_ms,
                heartbeat_interval_ms=self.heartbeat_interval_ms,
                max_poll_interval_ms=self.max_poll_interval_ms,
                fetch_max_wait_ms=CONSUMER_FETCH_MAX_WAIT_MS,
                metrics_enabled=False,
            )
        consumer = KafkaBusConsumer(self, client, group=group)
        self._consumers.add(consumer)
        return consumer

    # -- inspection (for ``casework dlq`` and operators) ------------------------------------

    def topics(self) -> list[str]:
        """Every topic on the cluster, sorted (internal ones, starting with ``__``, left out)."""
        with self._lock:
            admin = self._admin_client()
            with self._errors("list topics"):
                names = admin.list_topics()
        return sorted(name for name in names if not name.startswith("__"))

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get."""
        with self._errors("read end offsets", topic):
            client = KafkaConsumer(**self._common(), enable_auto_commit=False)
            try:
                partitions = client.partitions_for_topic(topic)
                ends = client.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
            finally:
                client.close()
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Per partition, the offset ``group`` has committed on ``topic`` (partitions without one are left out).
        Asked through a consumer that names the group but never joins it (OffsetFetch), which
        kafka-python 2 and 3 both offer."""
        with self._errors(f"read the offsets of group {group}", topic):
            client = KafkaConsumer(**self._common(), group_id=group, enable_auto_commit=False)
            try:
                partitions = client.partitions_for_topic(topic) or set()
                found = {p: client.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
            finally:
                client.close(autocommit=False)
        return {p: int(offset) for p, offset in found.items() if offset is not None and offset >= 0}

    def close(self) -> None:
        """Flush, close the consumers made by this bus (they leave their groups), then the clients."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            for consumer in list(self._consumers):
                consumer.close()
            with self._lock:
                for client in (self._producer, self._admin):
                    if client is not None:
                        try:
                            client.close()
                        except KafkaError as exc:
                            log.warning("closing a Kafka client of %s failed: %r", self.bootstrap_servers, exc)
                self._producer = self._admin = None


class KafkaBusConsumer:
    """One member of a Kafka consumer group (a ``KafkaConsumer`` with auto-commit off).

    Like ``KafkaConsumer`` it is meant for one thread.
    """

    def __init__(self, bus: KafkaBus, client: Any, *, group: str) -> None:
        self.group = group
        self._bus = bus
        self._client = client
        self._closed = False

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member reads, each with its starting position resolved."""
        with self._bus._errors(f"read the assignment of group {self.group}"):
            assigned = self._client.assignment() or set()
            for tp in assigned:
                self._client.position(tp, timeout_ms=self._bus.session_timeout_ms)
        return frozenset((tp.topic, tp.partition) for tp in assigned)

    def poll(self, *, max_records: int = 100, timeout: float = 1.0) -> list[Record]:
        """Return up to ``max_records`` records, waiting at most ``timeout`` s (joins the group if needed)."""
        with self._bus._errors(f"poll as group {self.group}"):
            batches = self._client.poll(timeout_ms=max(int(timeout * 1000), 0), max_records=max_records)
        return [
            Record(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key.decode("utf-8") if message.key is not None else "",
                value=message.value if message.value is not None else b"",
            )
            for messages in batches.values()
            for message in messages
        ]

    def commit(self, records: Sequence[Record]) -> None:
        """Commit, per partition among ``records``, the offset after the highest one given (synchronously).

        If the group has rebalanced since these records were polled, Kafka refuses the commit;
        that is logged, not raised: the partitions' owners will deliver the records again.
        """
        if not records:
            return
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp not in offsets or offsets[tp].offset <= record.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        with self._bus._errors(f"commit offsets of group {self.group}"):
            try:
                self._client.commit(offsets=offsets)
            except (CommitFailedError, RebalanceInProgressError) as exc:
                log.warning(
                    "group %s rebalanced before the commit of %s: not committed (%r); they will be delivered again",
                    self.group,
                    sorted((tp.topic, tp.partition) for tp in offsets),
                    exc,
                )

    def close(self) -> None:
        """Leave the group at once; the partitions go to the others from the committed offsets."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close(autocommit=False)
        except KafkaError as exc:
            log.warning("consumer of group %s did not close cleanly: %r", self.group, exc)
