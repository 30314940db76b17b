"""The bus contract: one suite, run against the SQLite log and against a real Kafka-protocol broker.

Every test uses topics and groups of its own. The SQLite-only tests at the end cover what only
the embedded log has to get right itself: several processes on one file, a crashed consumer
process, a silent member dropped after its session timeout.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, cast

import pytest

from ingest.bus.kafka_bus import KafkaBus
from ingest.bus.port import Bus, Consumer, Record, StartFrom
from ingest.bus.sqlite_log import SqliteBus, partition_for
from ingest.errors import BusError
from tests.kafka_broker import KAFKA_TEST_OPTS

PARTITIONS = 4
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# TANSU_LATEST: the Tansu 0.6 test broker (memory storage) answers ListOffsets(latest) with the
# base offset of the partition's last record batch + 1, not the log end. A producer sends a
# flush's records to one partition as one batch, so the tests that read the log end on Kafka
# (start="latest", end_offsets) flush one record at a time. Real Kafka has no such need.


class Member(Consumer, Protocol):
    """Both adapters' consumers also tell their current assignment (not part of the port)."""

    def assignment(self) -> frozenset[tuple[str, int]]: ...


class Inspectable(Bus, Protocol):
    def end_offsets(self, topic: str) -> dict[int, int]: ...


@dataclass
class Kind:
    name: str
    new_bus: Callable[[], Bus]  # another client of the same log: same file, or same broker
    quiet: float  # how long "nothing more arrives" is watched for


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    opened: list[Bus] = []

    def new_bus() -> Bus:
        bus: Bus
        if request.param == "sqlite":
            bus = SqliteBus(tmp_path / "bus.db", partitions=PARTITIONS)
        else:
            broker: str = request.getfixturevalue("kafka_broker")
            bus = KafkaBus(broker, partitions=PARTITIONS, client_id="contract-test", **KAFKA_TEST_OPTS)
        opened.append(bus)
        return bus

    yield Kind(request.param, new_bus, quiet=0.3 if request.param == "sqlite" else 1.5)
    for bus in opened:
        bus.close()


@pytest.fixture
def bus(kind: Kind) -> Bus:
    return kind.new_bus()


@pytest.fixture
def name() -> Callable[[str], str]:
    """Unique topic and group names for one test: ``name("intake.raw")`` -> ``intake.raw.t1a2b3c4``."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}.t{suffix}"


def join(bus: Bus, topics: Sequence[str], group: str, start: StartFrom = "earliest") -> Member:
    return cast(Member, bus.consumer(topics, group=group, start=start))


def publish_all(bus: Bus, topic: str, items: Sequence[tuple[str, str]], batch: int = 50) -> None:
    for n, (key, value) in enumerate(items, 1):
        bus.publish(topic, key=key, value=value.encode())
        if n % batch == 0:
            bus.flush()
    bus.flush()


def poll_until(consumer: Consumer, count: int, timeout: float = 30.0, commit: bool = False) -> list[Record]:
    """Poll until ``count`` records arrived (or ``timeout``); commit each batch if asked."""
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        batch = consumer.poll(max_records=37, timeout=0.5)
        if commit:
            consumer.commit(batch)
        got.extend(batch)
    return got


def poll_for(consumer: Consumer, seconds: float) -> list[Record]:
    """Everything that arrives within ``seconds`` (to show that nothing more does)."""
    got: list[Record] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        got.extend(consumer.poll(max_records=100, timeout=min(left, 0.5)))
    return got


def in_parallel(*calls: Callable[[], T]) -> list[T]:
    """Run each call in a thread of its own (one consumer per thread, as workers do); return the results.

    kafka-python 3.0 drops a group join that completes while its consumer is not inside
    ``poll`` and starts over, so consumers taking turns in one thread can take ~20 s to form a
    group; each polling in its own thread, they form it in one round (~3-6 s on Tansu).
    """
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def wait_for_assignment(
    members: Sequence[Member], topic: str, timeout: float = 40.0
) -> list[frozenset[tuple[str, int]]]:
    """Poll (nothing may arrive) until the members hold disjoint, non-empty shares of all partitions."""
    everything = {(topic, p) for p in range(PARTITIONS)}
    shares: list[frozenset[tuple[str, int]]] = [frozenset()] * len(members)
    settled = threading.Event()
    deadline = time.monotonic() + timeout

    def spin(i: int) -> list[Record]:
        unexpected: list[Record] = []
        while not settled.is_set() and time.monotonic() < deadline:
            unexpected += members[i].poll(max_records=10, timeout=0.2)
            shares[i] = members[i].assignment()
            if all(shares) and sum(map(len, shares)) == len(everything) and set().union(*shares) == everything:
                settled.set()
        return unexpected

    unexpected = in_parallel(*(functools.partial(spin, i) for i in range(len(members))))
    assert unexpected == [[] for _ in members], "records arrived that should not have"
    if not settled.is_set():
        pytest.fail(f"group did not settle in {timeout} s: {[sorted(share) for share in shares]}")
    return shares


def settled_then_quiet(member: Member, topic: str, quiet: float) -> list[Record]:
    """What arrives once ``member`` holds its partitions, within ``quiet`` s (asserts nothing came before)."""
    wait_for_assignment([member], topic)
    return poll_for(member, quiet)


def consume_together(members: Sequence[Consumer], total: int, timeout: float = 30.0) -> list[list[Record]]:
    """Each member polls (and commits) in its own thread until they have ``total`` records between them."""
    counted = [0] * len(members)
    deadline = time.monotonic() + timeout

    def consume(i: int) -> list[Record]:
        got: list[Record] = []
        while sum(counted) < total and time.monotonic() < deadline:
            batch = members[i].poll(max_records=25, timeout=0.2)
            members[i].commit(batch)
            got += batch
            counted[i] = len(got)
        return got

    return in_parallel(*(functools.partial(consume, i) for i in range(len(members))))


def values(records: Sequence[Record]) -> list[str]:
    return [r.value.decode() for r in records]


# -- the contract -----------------------------------------------------------------------------


def test_records_of_one_key_arrive_in_publish_order(bus: Bus, name: Callable[[str], str]) -> None:
    topic = name("intake.raw")
    keys = [f"item-{k}" for k in range(12)]
    items = [(key, f"{key}:{seq}") for seq in range(40) for key in keys]  # keys interleaved
    publish_all(bus, topic, items, batch=100)

    got = poll_until(bus.consumer([topic], group=name("order")), len(items))

    assert sorted(values(got)) == sorted(v for _, v in items)  # each exactly once
    by_key: dict[str, list[int]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in got:
        key, seq = record.value.decode().split(":")
        assert record.key == key
        by_key[key].append(int(seq))
        partitions_of[key].add(record.partition)
    assert all(seqs == list(range(40)) for seqs in by_key.values()), by_key
    assert all(len(parts) == 1 for parts in partitions_of.values())  # a key stays in its partition
    assert len({r.partition for r in got}) > 1  # ... and keys are spread over partitions
    for partition in {r.partition for r in got}:
        offsets = [r.offset for r in got if r.partition == partition]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_members_of_a_group_split_the_partitions(bus: Bus, name: Callable[[str], str]) -> None:
    topic, group = name("intake.extracted"), name("classify")
    first, second = join(bus, [topic], group), join(bus, [topic], group)
    share_1, share_2 = wait_for_assignment([first, second], topic)

    items = [(f"item-{n % 40}", f"v{n}") for n in range(200)]
    publish_all(bus, topic, items)
    got_1, got_2 = consume_together([first, second], len(items))

    assert sorted(values(got_1 + got_2)) == sorted(v for _, v in items)  # together: every record once
    assert got_1 and got_2  # each did some of the work
    parts_1, parts_2 = {r.partition for r in got_1}, {r.partition for r in got_2}
    assert not parts_1 & parts_2  # no partition read by both
    assert {(topic, p) for p in parts_1} <= share_1 and {(topic, p) for p in parts_2} <= share_2


def test_a_restarted_consumer_continues_after_its_commit(kind: Kind, bus: Bus, name: Callable[[str], str]) -> None:
    topic, group = name("intake.classified"), name("file")
    publish_all(bus, topic, [(f"item-{n % 7}", f"old-{n}") for n in range(60)])
    consumer = bus.consumer([topic], group=group)
    first = poll_until(consumer, 60, commit=True)
    assert sorted(values(first)) == sorted(f"old-{n}" for n in range(60))
    consumer.close()

    publish_all(bus, topic, [(f"item-{n % 7}", f"new-{n}") for n in range(30)])
    restarted = bus.consumer([topic], group=group)
    second = poll_until(restarted, 30)
    second += poll_for(restarted, kind.quiet)
    assert sorted(values(second)) == sorted(f"new-{n}" for n in range(30))  # nothing old again, nothing lost


def test_what_was_polled_but_not_committed_is_delivered_again(kind: Kind, bus: Bus, name: Callable[[str], str]) -> None:
    topic, group = name("intake.raw"), name("extract")
    publish_all(bus, topic, [(f"item-{n % 9}", f"v{n}") for n in range(80)])
    consumer = bus.consumer([topic], group=group)
    got = poll_until(consumer, 80)
    assert len(got) == 80
    # commit the first half of what each partition delivered, then "crash" before the rest
    per_partition: dict[int, list[Record]] = defaultdict(list)
    for record in got:
        per_partition[record.partition].append(record)
    done = [r for recs in per_partition.values() for r in recs[: len(recs) // 2]]
    consumer.commit(done)
    consumer.close()

    again = bus.consumer([topic], group=group)
    redelivered = poll_until(again, 80 - len(done))
    redelivered += poll_for(again, kind.quiet)
    expected = {(r.partition, r.offset, r.value) for r in got} - {(r.partition, r.offset, r.value) for r in done}
    assert {(r.partition, r.offset, r.value) for r in redelivered} == expected
    assert len(redelivered) == len(expected)


def test_dead_letters_go_to_a_topic_with_groups_of_its_own(kind: Kind, bus: Bus, name: Callable[[str], str]) -> None:
    raw, dead = name("intake.raw"), name("intake.dead")
    items = [(f"item-{n}", "bad" if n % 5 == 0 else "good") for n in range(40)]
    publish_all(bus, raw, [(key, f"{key}={verdict}") for key, verdict in items])

    # a stage reads raw, dead-letters the bad ones (flush before commit), commits
    stage = bus.consumer([raw], group=name("extract"))
    handled = poll_until(stage, len(items))
    for record in handled:
        if record.value.endswith(b"=bad"):
            letter = {"stage": "extract", "error": "BadInput", "original": record.value.decode()}
            bus.publish(dead, key=record.key, value=json.dumps(letter).encode())
            bus.flush()  # one letter per flush: see TANSU_LATEST
    stage.commit(handled)
    stage.close()

    bad = sorted(f"{key}=bad" for key, verdict in items if verdict == "bad")
    # two groups on the dead-letter topic each get every letter, independently of each other
    listing, replay = bus.consumer([dead], group=name("dlq-list")), bus.consumer([dead], group=name("dlq-replay"))
    letters_1, letters_2 = in_parallel(lambda: poll_until(listing, len(bad)), lambda: poll_until(replay, len(bad)))
    listing.commit(letters_1)
    for letters in (letters_1, letters_2):
        assert sorted(json.loads(r.value)["original"] for r in letters) == bad
        assert all(r.topic == dead and r.key == json.loads(r.value)["original"].split("=")[0] for r in letters)
    assert sum(cast(Inspectable, bus).end_offsets(dead).values()) == len(bad)

    # after a restart: the stage's group has nothing left on raw (and never sees the dead-letter
    # topic); the listing group committed, so it gets nothing; the replay group did not: all again
    listing.close()
    replay.close()
    back, relist = join(bus, [raw], name("extract")), join(bus, [dead], name("dlq-list"))
    rereplay = bus.consumer([dead], group=name("dlq-replay"))
    after_restart = in_parallel(
        lambda: settled_then_quiet(back, raw, kind.quiet),
        lambda: settled_then_quiet(relist, dead, kind.quiet),
        lambda: poll_until(rereplay, len(bad)) + poll_for(rereplay, kind.quiet),
    )
    assert after_restart[:2] == [[], []]
    assert sorted(json.loads(r.value)["original"] for r in after_restart[2]) == bad


def test_a_new_group_starting_at_latest_skips_what_is_already_there(
    kind: Kind, bus: Bus, name: Callable[[str], str]
) -> None:
    topic = name("intake.raw")
    publish_all(bus, topic, [(f"item-{n % 11}", f"old-{n}") for n in range(30)], batch=1)  # TANSU_LATEST
    latest = join(bus, [topic], name("tail"), start="latest")
    wait_for_assignment([latest], topic)  # asserts the old records do not arrive

    publish_all(bus, topic, [(f"item-{n % 11}", f"new-{n}") for n in range(20)])
    got = poll_until(latest, 20) + poll_for(latest, kind.quiet)
    assert sorted(values(got)) == sorted(f"new-{n}" for n in range(20))
    earliest = bus.consumer([topic], group=name("replay"), start="earliest")  # the contrast: everything
    assert len(poll_until(earliest, 50)) == 50


# -- SQLite only: processes, crashes, sessions --------------------------------------------------


def _run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip


CRASHING_CONSUMER = """
    import json, os, sys
    from pathlib import Path
    from ingest.bus.sqlite_log import SqliteBus

    bus = SqliteBus(Path(sys.argv[1]), partitions=4, session_timeout=1.0)
    consumer = bus.consumer([sys.argv[2]], group=sys.argv[3])
    got = []
    while len(got) < int(sys.argv[4]):
        got += consumer.poll(max_records=7, timeout=1.0)
    done = [r for r in got if r.offset < 5]  # commit the first 5 of each partition
    consumer.commit(done)
    print(json.dumps([[r.partition, r.offset, r.value.decode()] for r in done]), flush=True)
    os._exit(0)  # a crash: no close, no leaving the group
"""


def test_sqlite_offsets_survive_a_crashed_process(tmp_path: Path, name: Callable[[str], str]) -> None:
    path, topic, group = tmp_path / "bus.db", name("intake.raw"), name("extract")
    bus = SqliteBus(path, partitions=PARTITIONS)
    items = [(f"item-{n}", f"v{n}") for n in range(60)]
    publish_all(bus, topic, items)
    bus.close()

    done = json.loads(_run_python(CRASHING_CONSUMER, str(path), topic, group, "60").stdout)
    assert len(done) == 5 * PARTITIONS

    reopened = SqliteBus(path, partitions=PARTITIONS)  # a new process's view of the same file
    try:
        assert reopened.committed(group, topic) == dict.fromkeys(range(PARTITIONS), 5)
        consumer = reopened.consumer([topic], group=group)
        # the crashed member holds its partitions until its 1 s session runs out, then we get them
        got = poll_until(consumer, len(items) - len(done), timeout=15) + poll_for(consumer, 0.3)
        assert sorted(values(got)) == sorted({v for _, v in items} - {v for _, _, v in done})
        assert all(r.offset >= 5 for r in got)
    finally:
        reopened.close()


CONCURRENT_PUBLISHER = """
    import sys
    from pathlib import Path
    from ingest.bus.sqlite_log import SqliteBus

    bus = SqliteBus(Path(sys.argv[1]), partitions=4)
    for n in range(int(sys.argv[4])):
        bus.publish(sys.argv[2], key=f"{sys.argv[3]}-{n % 5}", value=f"{sys.argv[3]}-{n % 5}:{n}".encode())
        if n % 25 == 24:
            bus.flush()
    bus.close()
"""


def test_sqlite_threads_and_processes_publish_to_one_file(tmp_path: Path, name: Callable[[str], str]) -> None:
    path, topic = tmp_path / "bus.db", name("intake.raw")
    SqliteBus(path).close()  # create the file first, as `casework serve` would
    count = 1500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CONCURRENT_PUBLISHER), str(path), topic, f"proc{i}", str(count)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for i in range(2)
    ]
    shared = SqliteBus(path, partitions=PARTITIONS)  # one bus shared by three threads

    def publish(source: str) -> None:
        for n in range(count):
            shared.publish(topic, key=f"{source}-{n % 5}", value=f"{source}-{n % 5}:{n}".encode())
            if n % 30 == 29:
                shared.flush()
        shared.flush()

    threads = [threading.Thread(target=publish, args=(f"thread{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]

    got = poll_until(shared.consumer([topic], group=name("check")), 5 * count, timeout=30)
    assert len(got) == 5 * count and len({r.value for r in got}) == 5 * count
    ends = shared.end_offsets(topic)
    for partition in range(PARTITIONS):  # offsets are dense: 0..end-1, no gaps, no duplicates
        assert sorted(r.offset for r in got if r.partition == partition) == list(range(ends[partition]))
    by_key: dict[str, list[int]] = defaultdict(list)
    for record in got:
        assert record.partition == partition_for(record.key, PARTITIONS)
        by_key[record.key].append(int(record.value.decode().split(":")[1]))
    assert len(by_key) == 25 and all(seqs == sorted(seqs) for seqs in by_key.values())
    shared.close()


def test_sqlite_silent_member_is_dropped_and_its_records_go_to_the_others(
    tmp_path: Path, name: Callable[[str], str]
) -> None:
    topic, group = name("intake.raw"), name("extract")
    # silent = stops polling for longer than max_poll_interval (a wedged handler): its heartbeat stops
    bus = SqliteBus(tmp_path / "bus.db", partitions=PARTITIONS, session_timeout=0.5, max_poll_interval=0.5)
    try:
        alive, silent = join(bus, [topic], group), join(bus, [topic], group)
        wait_for_assignment([alive, silent], topic)
        publish_all(bus, topic, [(f"item-{n}", f"v{n}") for n in range(40)])
        stuck = poll_until(silent, 1, timeout=5)  # polls some, then hangs without committing
        assert stuck

        got = poll_until(alive, 40, timeout=10)  # after 0.5 s of silence its partitions move here
        assert sorted(values(got)) == sorted(f"v{n}" for n in range(40))
        assert alive.assignment() == {(topic, p) for p in range(PARTITIONS)}
        silent.commit(stuck)  # too late: those partitions belong to `alive` now, not committed
        assert bus.committed(group, topic) == {}
        alive.commit(got)
        assert bus.committed(group, topic) == bus.end_offsets(topic)
        assert silent.poll(timeout=0.2) == []  # polling again rejoins the group and takes a share back
        assert poll_for(alive, 0.3) == []  # alive gives that share up; nothing is delivered twice
        shares = [alive.assignment(), silent.assignment()]
        assert all(shares) and not shares[0] & shares[1] and len(shares[0] | shares[1]) == PARTITIONS
    finally:
        bus.close()


def test_kafka_unreachable_broker_is_a_bus_error_naming_the_address() -> None:
    bus = KafkaBus("127.0.0.1:9", bootstrap_timeout_ms=500)
    with pytest.raises(BusError, match=r"127\.0\.0\.1:9.*[Cc]heck the broker address") as caught:
        bus.publish("intake.raw", key="k", value=b"v")
    assert caught.value.retryable
    bus.close()


def test_sqlite_prunes_only_old_records_every_group_has_committed(tmp_path: Path, name: Callable[[str], str]) -> None:
    path, topic, dead = tmp_path / "bus.db", name("intake.raw"), name("intake.dead")
    bus = SqliteBus(path, partitions=1)
    try:
        publish_all(bus, topic, [("k", f"old-{n}") for n in range(10)])
        publish_all(bus, dead, [("k", "a dead letter")])
        fast, slow = bus.consumer([topic], group=name("fast")), bus.consumer([topic], group=name("slow"))
        fast.commit(poll_until(fast, 10))
        slow_got = poll_until(slow, 10)
        slow.commit(slow_got[:4])  # the slow group has handled 4 of 10
        time.sleep(0.3)
        publish_all(bus, topic, [("k", f"new-{n}") for n in range(3)])  # offsets 10-12, younger than 0.2 s
        assert bus.prune(0.2) == 4, "only what the slow group committed"
        fast.commit(poll_until(fast, 3))
        slow.commit(slow_got[4:] + poll_until(slow, 3))
        assert bus.prune(0.2) == 6, "now all the old ones, none of the new"
        assert bus.prune(0.0) == 2, "never the newest record of a partition"
        assert bus.end_offsets(topic) == {0: 13} and bus.end_offsets(dead) == {0: 1}, "no group reads the DLQ"
        publish_all(bus, topic, [("k", "next")])
        assert [r.offset for r in poll_until(fast, 1)] == [13], "offsets keep growing after a prune"
        late = bus.consumer([topic], group=name("late"))
        assert values(poll_until(late, 2)) == ["new-2", "next"], "a new group starts at what is left"
        slow.close()
        bus.forget_group(slow.group)
        assert bus.committed(slow.group, topic) == {}
    finally:
        bus.close()


def test_sqlite_flush_prunes_when_the_bus_has_a_retention(tmp_path: Path, name: Callable[[str], str]) -> None:
    path, topic = tmp_path / "bus.db", name("intake.raw")
    dead = name("intake.dead")
    bus = SqliteBus(path, partitions=1, retention_s=0.0, keep_topics=[dead])
    try:
        publish_all(bus, topic, [("k", f"v{n}") for n in range(5)])
        publish_all(bus, dead, [("k", f"d{n}") for n in range(3)])
        consumer, replay = bus.consumer([topic], group=name("g")), bus.consumer([dead], group=name("replay"))
        consumer.commit(poll_until(consumer, 5))
        replay.commit(poll_until(replay, 3))
        bus._next_prune = 0.0  # as if PRUNE_EVERY_S had passed
        publish_all(bus, topic, [("k", "v5")])
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT MIN(offset) FROM records WHERE topic = ?", (topic,)).fetchone() == (5,)
            assert conn.execute("SELECT COUNT(*) FROM records WHERE topic = ?", (dead,)).fetchone() == (3,)
    finally:
        bus.close()


def test_sqlite_prune_waits_for_a_live_group_that_has_not_committed(tmp_path: Path, name: Callable[[str], str]) -> None:
    path, topic = tmp_path / "bus.db", name("intake.raw")
    bus = SqliteBus(path, partitions=1)
    try:
        publish_all(bus, topic, [("k", f"v{n}") for n in range(10)])
        archive = bus.consumer([topic], group=name("archive"))  # joined, has read nothing yet
        extract = bus.consumer([topic], group=name("extract"))
        extract.commit(poll_until(extract, 10))
        assert bus.prune(0.0) == 0, "the archive group has not handled any of them"
        assert values(poll_until(archive, 10)) == [f"v{n}" for n in range(10)]
        with pytest.raises(ValueError, match="live member"):
            bus.forget_group(archive.group)
        archive.close()  # leaves the group: now it is a group without members or commits
        assert bus.prune(0.0) == 9
        bus.forget_group(archive.group)
    finally:
        bus.close()
