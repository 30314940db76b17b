"""Open the bus named by a URL: the embedded SQLite log or a Kafka cluster."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ingest.bus.port import Bus
from ingest.bus.sqlite_log import SqliteBus
from ingest.messages import TOPIC_DEAD

log = logging.getLogger(__name__)

ACCEPTED = (
    "sqlite: or sqlite:// (the file bus.db in the data directory), "
    "sqlite:///absolute/path/to/bus.db, "
    "kafka://host:port[,host2:port2,...]"
)


def open_bus(url: str, *, data_dir: Path, partitions: int = 4, retention_hours: float | None = None,
             **kafka_opts: Any) -> Bus:
    """Open the bus ``url`` names, with ``partitions`` partitions for the topics it creates.

    ``retention_hours`` (SQLite only; a Kafka topic's retention is the broker's setting): delete
    consumed records older than this (never dead letters); None keeps everything.
    ``kafka_opts`` (``client_id``, ``session_timeout_ms``, ``heartbeat_interval_ms``,
    ``replication_factor``, ``bootstrap_timeout_ms``, ``max_poll_interval_ms``) go to
    ``KafkaBus``. A SQLite bus takes ``session_timeout_ms`` (how long a dead member's partitions
    wait; its members heartbeat from a thread of their own) and ``max_poll_interval_ms`` (the
    longest a member may go without polling), and ignores the rest.
    Raises ``ValueError`` naming the accepted forms for anything else.
    """
    url = url.strip()
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme == "sqlite" and sep:
        if rest in ("", "//"):
            path = Path(data_dir) / "bus.db"
        elif rest.startswith("///") and len(rest) > 3:
            path = Path(rest[2:])
        else:
            raise ValueError(f"bus URL {url!r}: a SQLite path must be absolute; accepted forms: {ACCEPTED}")
        session_timeout_ms = kafka_opts.pop("session_timeout_ms", None)
        max_poll_ms = kafka_opts.pop("max_poll_interval_ms", None)
        if kafka_opts:
            log.debug("SQLite bus ignores Kafka options %s", sorted(kafka_opts))
        retention_s = None if retention_hours is None else retention_hours * 3600
        return SqliteBus(path, partitions=partitions,
                         session_timeout=10.0 if session_timeout_ms is None else int(session_timeout_ms) / 1000,
                         max_poll_interval=None if max_poll_ms is None else int(max_poll_ms) / 1000,
                         retention_s=retention_s, keep_topics=[TOPIC_DEAD])
    if scheme == "kafka" and rest.startswith("//"):
        servers = [server.strip() for server in rest[2:].rstrip("/").split(",")]
        for server in servers:
            host, colon, port = server.rpartition(":")
            if not host or not colon or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bus URL {url!r}: {server!r} is not host:port; accepted forms: {ACCEPTED}")
        from ingest.bus.kafka_bus import KafkaBus  # kafka-python takes ~0.4 s to import: only when used

        return KafkaBus(",".join(servers), partitions=partitions, **kafka_opts)
    raise ValueError(f"unknown bus URL {url!r}; accepted forms: {ACCEPTED}")
