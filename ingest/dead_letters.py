"""Reading and replaying the dead-letter topic ``intake.dead``."""

from __future__ import annotations

import logging
import uuid

from ingest.bus.port import Bus
from ingest.messages import TOPIC_DEAD, DeadLetter, decode

log = logging.getLogger(__name__)

REPLAY_GROUP = "casework.dlq-replay"


def read_dead_letters(bus: Bus, *, idle_polls: int = 2, timeout: float = 0.5) -> list[DeadLetter]:
    """Every dead letter on the topic, oldest first per partition (a throwaway group, nothing committed)."""
    consumer = bus.consumer([TOPIC_DEAD], group=f"casework.dlq-list.{uuid.uuid4().hex[:12]}", start="earliest")
    letters: list[DeadLetter] = []
    idle = 0
    try:
        while idle < idle_polls:
            records = consumer.poll(max_records=500, timeout=timeout)
            if not records:
                idle += 1
                continue
            idle = 0
            letters.extend(decode(r.topic, r.value) for r in records)
    finally:
        consumer.close()
    return sorted(letters, key=lambda d: d.failed_at)


def replay_dead_letters(bus: Bus, *, timeout: float = 0.5) -> int:
    """Publish each dead letter's original envelope to the topic it failed on; each is replayed once."""
    consumer = bus.consumer([TOPIC_DEAD], group=REPLAY_GROUP, start="earliest")
    n = 0
    try:
        while records := consumer.poll(max_records=500, timeout=timeout):
            for record in records:
                letter: DeadLetter = decode(record.topic, record.value)
                bus.publish(letter.topic, key=letter.key, value=letter.envelope.encode())
                n += 1
            bus.flush()
            consumer.commit(records)
    finally:
        consumer.close()
    log.info("replayed %d dead letters", n)
    return n
