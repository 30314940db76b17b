"""A group's backlog from the bus, on both adapters: what was written and not yet committed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.bus.kafka_bus import KafkaBus
from ingest.bus.lag import group_lag
from ingest.bus.port import Record
from ingest.bus.sqlite_log import SqliteBus
from tests.kafka_broker import KAFKA_TEST_OPTS


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteBus | KafkaBus]:
    opened: SqliteBus | KafkaBus
    if request.param == "sqlite":
        opened = SqliteBus(tmp_path / "bus.db", partitions=2)
    else:
        broker: str = request.getfixturevalue("kafka_broker")
        opened = KafkaBus(broker, partitions=2, client_id="lag-test", **KAFKA_TEST_OPTS)
    yield opened
    opened.close()


def test_lag_is_what_the_group_has_not_committed(bus: SqliteBus | KafkaBus) -> None:
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    for i in range(5):
        bus.publish(topic, key=f"k{i}", value=b"v")
        bus.flush()  # one record per flush: the Tansu test broker's end offsets need it (see test_bus_contract)
    assert group_lag(bus, group=group, topic=topic).lag == 5, "a group that never committed is behind by everything"

    consumer = bus.consumer([topic], group=group)
    try:
        got: list[Record] = []
        deadline = time.monotonic() + 60
        while len(got) < 3 and time.monotonic() < deadline:
            got.extend(consumer.poll(max_records=3 - len(got), timeout=1.0))
        consumer.commit(got[:3])
        lag = group_lag(bus, group=group, topic=topic)
        assert (lag.end, lag.committed, lag.lag) == (5, 3, 2)  # polled records are a prefix of each partition
        while len(got) < 5 and time.monotonic() < deadline:
            got.extend(consumer.poll(max_records=5, timeout=1.0))
        consumer.commit(got)
    finally:
        consumer.close()
    done = group_lag(bus, group=group, topic=topic)
    assert done.caught_up and done.committed == 5 == done.end
