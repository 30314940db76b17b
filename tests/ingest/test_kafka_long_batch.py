"""Issue 13: on Kafka, a member busy with one batch for longer than the session timeout (an
extract batch of scans being OCRed) keeps its partitions. kafka-python heartbeats from a thread of
its own, so only ``max_poll_interval_ms`` (sized to the longest batch: docs/operations.md
"Long OCR batches") bounds how long a batch may take; nothing is handed to another member meanwhile."""

from __future__ import annotations

import time
import uuid

import pytest

from ingest.bus.kafka_bus import KafkaBus
from tests.ingest.test_bus_contract import (
    join,
    poll_for,
    poll_until,
    publish_all,
    values,
    wait_for_assignment,
)
from tests.kafka_broker import KAFKA_TEST_OPTS

pytestmark = pytest.mark.kafka


def test_a_batch_longer_than_the_session_timeout_keeps_its_partitions(
        kafka_broker: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"intake.raw.t{suffix}", f"extract.t{suffix}"
    bus = KafkaBus(kafka_broker, partitions=4, max_poll_interval_ms=60000, **KAFKA_TEST_OPTS)
    try:
        busy, other = join(bus, [topic], group), join(bus, [topic], group)
        wait_for_assignment([busy, other], topic)
        publish_all(bus, topic, [(f"item-{n}", f"v{n}") for n in range(40)])
        mine = poll_until(busy, 1, timeout=20)
        assert mine
        # busy "reads pages" for 1.5 session timeouts without polling; other polls on meanwhile
        session_s = KAFKA_TEST_OPTS["session_timeout_ms"] / 1000
        started = time.monotonic()
        theirs = poll_for(other, session_s * 1.5)
        assert time.monotonic() - started > session_s
        assert not set(values(mine)) & set(values(theirs)), "busy's records were handed to another member"
        assert busy.assignment() and not busy.assignment() & other.assignment()
        busy.commit(mine)  # still the partitions' owner: the commit is accepted
        rest = poll_until(busy, 40 - len(mine) - len(theirs), timeout=20)
        busy.commit(rest)
        other.commit(theirs)
        assert sorted(values(mine) + values(rest) + values(theirs)) == sorted(f"v{n}" for n in range(40))
        other.close()
        busy.close()
        late = join(bus, [topic], group)  # everything was committed: a new member gets nothing
        assert poll_for(late, 8.0) == []
        late.close()
    finally:
        bus.close()
