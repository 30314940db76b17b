"""The worker loop on the real SQLite log: publish before commit, retries, dead letters, redelivery."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from ingest.bus.sqlite_log import SqliteBus
from ingest.errors import BadInput, Unavailable
from ingest.messages import TOPIC_DEAD, TOPIC_EXTRACTED, TOPIC_RAW, DeadLetter, RawItem, decode, encode, utcnow
from ingest.stage_metrics import STAGE_REGISTRY
from ingest.worker import Output, RetryPolicy, Worker
from tests.connectors.conftest import wait_until


def raw(n: int) -> RawItem:
    return RawItem(item_id=f"item-{n}", channel="file", received_at=utcnow(), idempotency_key=f"k{n}",
                   blob_sha256="0" * 64, size=1, filename=f"f{n}.txt")


class Stage:
    """A stage that fails item-1 permanently and item-2 twice with a retryable error."""

    name = "test"
    in_topic = TOPIC_RAW

    linger_s = 0.0

    def __init__(self, batched: bool) -> None:
        self.batched = batched
        self.calls: dict[str, int] = {}

    def prepare(self, messages: Sequence[RawItem]) -> None:
        pass

    def handle_batch(self, messages: Sequence[RawItem]) -> list[Output]:
        out: list[Output] = []
        for m in messages:
            self.calls[m.item_id] = self.calls.get(m.item_id, 0) + 1
            if m.item_id == "item-1":
                raise BadInput("this file is corrupt: ask the sender for a new copy")
            if m.item_id == "item-2" and self.calls[m.item_id] <= 2:
                raise Unavailable("database busy")
            out.append((TOPIC_EXTRACTED, m.item_id, m))
        return out


def drain(bus: SqliteBus, topic: str, group: str) -> list[bytes]:
    c = bus.consumer([topic], group=group)
    values: list[bytes] = []
    while records := c.poll(max_records=100, timeout=0.3):
        values.extend(r.value for r in records)
    c.close()
    return values


def run_until_idle(worker: Worker, bus: SqliteBus) -> None:
    consumer = bus.consumer([worker.handler.in_topic], group=worker.group)
    while worker.run_once(consumer):
        pass
    consumer.close()


def test_good_items_flow_bad_ones_are_dead_lettered_retryable_ones_retried(tmp_path: Path) -> None:
    for batched in (True, False):
        bus = SqliteBus(tmp_path / f"bus-{batched}.db", partitions=2)
        for n in range(5):
            bus.publish(TOPIC_RAW, key=f"item-{n}", value=encode(raw(n)))
        bus.publish(TOPIC_RAW, key="junk", value=b"{not json")
        bus.flush()
        letters: list[DeadLetter] = []
        stage = Stage(batched)
        worker = Worker(bus=bus, handler=stage, group="g", on_dead=letters.append,
                        retry=RetryPolicy(max_attempts=5, backoff_initial_s=0.01))
        run_until_idle(worker, bus)

        passed = sorted(decode(TOPIC_EXTRACTED, v).item_id for v in drain(bus, TOPIC_EXTRACTED, "check"))
        assert passed == ["item-0", "item-2", "item-3", "item-4"]
        dead = sorted((decode(TOPIC_DEAD, v) for v in drain(bus, TOPIC_DEAD, "check")), key=lambda d: d.key)
        assert [(d.key, d.error_class) for d in dead] == [("item-1", "BadInput"), ("junk", "ValidationError")]
        assert dead[0].stage == "test" and "ask the sender" in dead[0].message and dead[0].retryable is False
        assert decode(TOPIC_RAW, dead[0].envelope.encode()).item_id == "item-1", "the original envelope is kept"
        assert len(letters) == 2
        assert stage.calls["item-2"] >= 3
        # everything was committed: the group has nothing left
        assert drain(bus, TOPIC_RAW, "g") == []
        bus.close()


def test_retryable_error_exhausted_goes_to_dead_letters(tmp_path: Path) -> None:
    class AlwaysBusy(Stage):
        def handle_batch(self, messages: Sequence[RawItem]) -> list[Output]:
            raise Unavailable("the tool never answers")

    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    bus.publish(TOPIC_RAW, key="item-9", value=encode(raw(9)))
    bus.flush()
    worker = Worker(bus=bus, handler=AlwaysBusy(True), group="g", retry=RetryPolicy(3, 0.01, 0.02))
    run_until_idle(worker, bus)
    (letter,) = [decode(TOPIC_DEAD, v) for v in drain(bus, TOPIC_DEAD, "check")]
    assert letter.attempts == 3 and letter.retryable is True


def test_stop_during_backoff_leaves_the_batch_uncommitted_for_redelivery(tmp_path: Path) -> None:
    class Busy(Stage):
        def handle_batch(self, messages: Sequence[RawItem]) -> list[Output]:
            stop.set()
            raise Unavailable("busy")

    stop = threading.Event()
    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    bus.publish(TOPIC_RAW, key="item-7", value=encode(raw(7)))
    bus.flush()
    worker = Worker(bus=bus, handler=Busy(True), group="g", stop=stop, retry=RetryPolicy(5, 5.0))
    worker.run()  # returns promptly: stop interrupts the backoff
    assert drain(bus, TOPIC_DEAD, "check") == []
    again = bus.consumer([TOPIC_RAW], group="g")
    assert [r.key for r in again.poll(max_records=10, timeout=1.0)] == ["item-7"]
    again.close()


def test_the_worker_counts_items_failures_retries_and_batch_durations(tmp_path: Path) -> None:
    """The series /metrics shows per stage (ingest.stage_metrics), counted where the stage runs."""

    class Counted(Stage):
        name = "counted-stage"

    def sample(name: str, **labels: str) -> float:
        return STAGE_REGISTRY.get_sample_value(name, {"stage": "counted-stage", **labels}) or 0.0

    before = {n: sample(n) for n in ("casework_stage_items_total", "casework_stage_failed_total",
                                     "casework_stage_retries_total", "casework_stage_batch_duration_seconds_count")}
    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    for n in range(4):
        bus.publish(TOPIC_RAW, key=f"item-{n}", value=encode(raw(n)))
    bus.flush()
    worker = Worker(bus=bus, handler=Counted(True), group="g", batch_size=2,
                    retry=RetryPolicy(max_attempts=5, backoff_initial_s=0.01))
    run_until_idle(worker, bus)
    delta = {n: sample(n) - v for n, v in before.items()}
    assert delta == {"casework_stage_items_total": 4, "casework_stage_failed_total": 1,  # item-1
                     # item-2 failed in its batch, then alone once (a retry), then passed
                     "casework_stage_retries_total": 1,
                     "casework_stage_batch_duration_seconds_count": 2}
    assert sample("casework_stage_batch_duration_seconds_bucket", le="+Inf") >= 2


def test_a_slow_poll_hands_each_finished_item_on_before_the_rest_are_done(tmp_path: Path) -> None:
    """A stage handling one message at a time (extract reading scans): an item it finished goes to
    the next stage while a slower one of the same poll is still being handled; the poll's offsets
    are committed only at its end, so a crash before then delivers every item of it again."""
    release = threading.Event()

    class Slow(Stage):
        def handle_batch(self, messages: Sequence[RawItem]) -> list[Output]:
            if messages[0].item_id == "item-5":
                assert release.wait(30), "the test never let the slow item finish"
            return [(TOPIC_EXTRACTED, m.item_id, m) for m in messages]

    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    for n in (4, 5):
        bus.publish(TOPIC_RAW, key=f"item-{n}", value=encode(raw(n)))
    bus.flush()
    worker = Worker(bus=bus, handler=Slow(False), group="g", hand_on_after_s=0.0)
    consumer = bus.consumer([TOPIC_RAW], group="g")
    running = threading.Thread(target=worker.run_once, args=(consumer,))
    running.start()
    downstream = bus.consumer([TOPIC_EXTRACTED], group="next")
    early = [r.key for r in downstream.poll(max_records=10, timeout=10.0)]
    assert early == ["item-4"], "the finished item is on the bus while item-5 is still being handled"
    assert running.is_alive()
    release.set()
    running.join(30)
    assert [r.key for r in downstream.poll(max_records=10, timeout=10.0)] == ["item-5"]
    downstream.close()
    consumer.close()
    assert drain(bus, TOPIC_RAW, "g") == [], "the poll was committed once it was done"
    bus.close()


def test_a_lingering_stage_does_not_hold_the_last_item_of_a_trickle_for_the_whole_linger(tmp_path: Path) -> None:
    """The file stage lingers to gather a burst into one batch (one index commit); when nothing
    more comes, the item it has is handled after a short gap, not after the whole linger."""

    class Lingering(Stage):
        linger_s = 60.0

    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    bus.publish(TOPIC_RAW, key="item-3", value=encode(raw(3)))
    bus.flush()
    stage = Lingering(True)
    worker = Worker(bus=bus, handler=stage, group="g")
    consumer = bus.consumer([TOPIC_RAW], group="g")
    running = threading.Thread(target=worker.run_once, args=(consumer,), daemon=True)
    running.start()
    running.join(30)
    assert not running.is_alive(), "the poll waited out the 60 s linger with nothing more coming"
    assert stage.calls == {"item-3": 1}
    consumer.close()
    bus.close()


def test_a_stopping_worker_is_woken_from_its_poll(tmp_path: Path) -> None:
    """``Worker.wake`` (called by ``PipelineRunner.close`` after setting stop) ends the poll the
    worker waits in, instead of leaving it to its timeout; a poll that finds records is unaffected."""
    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    stop = threading.Event()
    worker = Worker(bus=bus, handler=Stage(True), group="g", stop=stop, poll_timeout=60.0)
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    wait_until(lambda: worker._consumer is not None, what="the worker joined its group")
    stop.set()  # a wake that comes before the poll is kept for it
    worker.wake()
    running.join(30)
    assert not running.is_alive(), "the worker waited out its 60 s poll after stop and wake"
    consumer = bus.consumer([TOPIC_RAW], group="h")
    bus.publish(TOPIC_RAW, key="item-8", value=encode(raw(8)))
    bus.flush()
    consumer.wakeup()
    assert [r.key for r in consumer.poll(max_records=10, timeout=5.0)] == ["item-8"], "records come before a wake"
    consumer.close()
    bus.close()
