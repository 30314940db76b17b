"""The message bus: a port (``Bus``/``Consumer``) and two adapters, a durable SQLite log and Kafka."""

from ingest.bus.port import Bus, Consumer, Record

__all__ = ["Bus", "Consumer", "Record"]
