"""The embedded bus adapter: a durable, Kafka-like log kept in one SQLite file.

Several threads and several processes may open the same file at once. Each ``SqliteBus`` and
each consumer has its own connection; the file runs in WAL mode with a busy timeout, and every
write is a short ``BEGIN IMMEDIATE`` transaction, so writers queue instead of failing.

Tables (all in the one file):

* ``topics(topic, partitions)``: a topic's partition count, fixed when it is first used;
* ``records(topic, partition, offset, key, value, ts)``: the log itself;
* ``committed(grp, topic, partition, offset, ts)``: each group's committed offsets;
* ``members(grp, member_id, topics, expires_at, joined_at, host, pid, pid_start)``: live group members;
* ``generations(grp, generation)``: bumped whenever a group's membership changes.

Retention (``retention_s``): records that every group consuming their topic has committed (a
group with live members counts even before its first commit), and that are older than
``retention_s``, are deleted (``prune``, run by ``flush`` at most every
``PRUNE_EVERY_S``). The newest record of each partition is always kept, so offsets (``max + 1``)
keep growing. Topics in ``keep_topics`` (the dead-letter topic) and topics no group has committed
on are never pruned, and a group that stops for good holds records back until it is removed
(``forget_group``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from ingest.bus.port import Record, StartFrom
from ingest.errors import BusError, DiskFull, is_disk_full
from ingest.procs import process_start_time

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS topics (
        topic TEXT PRIMARY KEY,
        partitions INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS records (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (topic, partition, offset)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS committed (
        grp TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (grp, topic, partition)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS members (
        grp TEXT NOT NULL,
        member_id TEXT NOT NULL,
        topics TEXT NOT NULL,
        expires_at REAL NOT NULL,
        joined_at REAL NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        pid_start TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (grp, member_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS generations (
        grp TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

#: How long a writer waits for another connection's write lock before giving up.
BUSY_TIMEOUT_S = 30.0
#: How often an idle ``poll`` looks for new records.
POLL_INTERVAL_S = 0.025
#: ``publish`` flushes on its own once this many records are buffered.
MAX_BUFFERED = 10_000
#: How often ``flush`` prunes the log when the bus has a retention.
PRUNE_EVERY_S = 600.0
#: Records deleted per write transaction when pruning.
PRUNE_BATCH = 5_000

Synchronous = Literal["FULL", "NORMAL"]


_MEMBER_COLUMNS = {
    "host": "host TEXT NOT NULL DEFAULT ''",
    "pid": "pid INTEGER NOT NULL DEFAULT 0",
    "pid_start": "pid_start TEXT NOT NULL DEFAULT ''",
}
_HOST = socket.gethostname()


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: crc32 of its UTF-8 bytes modulo the partition count (stable across runs)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def assign(members: Sequence[tuple[str, frozenset[str]]], partitions: dict[str, int]) -> dict[TopicPartition, str]:
    """Map each partition to its owner: per topic, round-robin over subscribed members sorted by id.

    Every member computes this from the same table, so all agree without a coordinator.
    """
    owners: dict[TopicPartition, str] = {}
    for topic, count in partitions.items():
        subscribed = sorted(member for member, topics in members if topic in topics)
        if not subscribed:
            continue
        for partition in range(count):
            owners[(topic, partition)] = subscribed[partition % len(subscribed)]
    return owners


def _connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection, mode: Literal["IMMEDIATE", "DEFERRED"]) -> Iterator[None]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def _errors(path: Path, doing: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        if is_disk_full(exc):
            raise DiskFull(str(path.parent), f"the SQLite bus could not {doing} ({exc})") from exc
        raise BusError(
            f"SQLite bus {path}: could not {doing}: {exc}. Check that the file and its directory are "
            f"writable, that the disk has space, and that no other process holds the write lock for "
            f"more than {BUSY_TIMEOUT_S:.0f} s."
        ) from exc


def _ensure_topics(conn: sqlite3.Connection, topics: Sequence[str], default: int) -> dict[str, int]:
    """Create missing topics with ``default`` partitions; return every topic's partition count.

    Call inside a write transaction.
    """
    counts: dict[str, int] = {}
    for topic in topics:
        conn.execute("INSERT OR IGNORE INTO topics (topic, partitions) VALUES (?, ?)", (topic, default))
        (count,) = conn.execute("SELECT partitions FROM topics WHERE topic = ?", (topic,)).fetchone()
        if count != default:
            log.debug("topic %s keeps its %d partitions (this bus would create %d)", topic, count, default)
        counts[topic] = int(count)
    return counts


def _first_at_or_after(conn: sqlite3.Connection, topic: str, partition: int, lo: int, hi: int,
                       ts_cutoff: float) -> int:
    """The lowest offset in [lo, hi) written at or after ``ts_cutoff`` (``hi`` if none): a binary
    search by point look-ups, as offsets are contiguous and written in time order."""
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute("SELECT ts FROM records WHERE topic = ? AND partition = ? AND offset = ?",
                           (topic, partition, mid)).fetchone()
        if row is not None and float(row[0]) < ts_cutoff:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _bump_generation(conn: sqlite3.Connection, group: str) -> None:
    conn.execute(
        "INSERT INTO generations (grp, generation) VALUES (?, 1) "
        "ON CONFLICT (grp) DO UPDATE SET generation = generation + 1",
        (group,),
    )


def _generation(conn: sqlite3.Connection, group: str) -> int:
    row = conn.execute("SELECT generation FROM generations WHERE grp = ?", (group,)).fetchone()
    return int(row[0]) if row else 0


def _live_members(conn: sqlite3.Connection, group: str, now: float) -> list[tuple[str, frozenset[str]]]:
    rows = conn.execute(
        "SELECT member_id, topics FROM members WHERE grp = ? AND expires_at >= ?", (group, now)
    ).fetchall()
    return [(str(member), frozenset(json.loads(topics))) for member, topics in rows]


class SqliteBus:
    """A Kafka-like log in one SQLite file; what it guarantees is what ``ingest.bus.port`` promises.

    * A record's partition is ``crc32(key) % partitions`` of its topic, so one key's records keep
      their publish order. A topic's partition count is fixed when the topic is first used.
    * ``flush`` writes everything published so far (by any thread) in one transaction and
      returns once it is committed (``synchronous=FULL``: on disk; ``NORMAL``: survives a
      process crash, may lose the last flushes on power loss).
    * Consumers of one group split each topic's partitions round-robin over the live members
      sorted by member id. A member's heartbeat is refreshed by a thread of its own (at most
      every ``min(1 s, session_timeout / 4)``, and by polls and commits), so a long batch (OCR of a
      thick scan) does not lose its partitions: the session timeout measures whether the process
      lives, not how long a batch takes.  ``max_poll_interval`` (if set) is the longest a member
      may go without polling before its heartbeat stops, so a wedged handler still hands its
      partitions on.  A member silent for longer than ``session_timeout`` is dropped by the next
      member that polls (it rejoins, from the committed offsets, when it polls again); ``close``
      leaves at once.  A joining member also drops members of its group on the same host whose
      process is gone (``kill -9``): a restarted process takes its work back at once instead of
      waiting out the timeout. On a membership change each member takes its new partitions from the group's
      committed offset (or ``start`` if there is none).
    * Committed offsets are rows in the file, so they outlive consumers and processes; what
      was polled but not committed is delivered again to the partition's next owner.

    One ``SqliteBus`` may be shared by the threads of a process; open a new one in each
    process (never share one across ``fork``). With ``retention_s`` set, consumed records older
    than that are deleted (see the module's docstring).
    """

    def __init__(
        self,
        path: Path,
        *,
        partitions: int = 4,
        session_timeout: float = 10.0,
        max_poll_interval: float | None = None,
        synchronous: Synchronous = "FULL",
        retention_s: float | None = None,
        keep_topics: Sequence[str] = (),
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if session_timeout <= 0:
            raise ValueError(f"session_timeout must be positive, got {session_timeout}")
        self.path = Path(path)
        self.partitions = partitions
        self.session_timeout = session_timeout
        self.max_poll_interval = max_poll_interval
        self.synchronous: Synchronous = synchronous
        self.retention_s = retention_s
        self.keep_topics = frozenset(keep_topics)  # never pruned (the dead-letter topic: people read it)
        self._next_prune = time.monotonic()
        self._lock = threading.Lock()  # guards self._conn and serialises flushes
        self._buffer_lock = threading.Lock()
        self._buffer: list[tuple[str, str, bytes]] = []
        self._topic_partitions: dict[str, int] = {}
        self._consumers: weakref.WeakSet[SqliteConsumer] = weakref.WeakSet()
        self._closed = False
        with _errors(self.path, "open the bus file"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self.path, synchronous)
            (mode,) = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
            with _transaction(self._conn, "IMMEDIATE"):
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                have = {row[1] for row in self._conn.execute("PRAGMA table_info(members)")}
                for column, ddl in _MEMBER_COLUMNS.items():  # bus files written before these columns
                    if column not in have:
                        self._conn.execute(f"ALTER TABLE members ADD COLUMN {ddl}")
        log.debug("opened SQLite bus %s (%d partitions per new topic)", self.path, partitions)

    # -- producing -------------------------------------------------------------------------

    def publish(self, topic: str, *, key: str, value: bytes) -> None:
        """Buffer a record; it is durable once ``flush`` returns (``publish`` flushes every 10,000)."""
        if self._closed:
            raise BusError(f"SQLite bus {self.path} is closed")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes, got {type(value).__name__}")
        with self._buffer_lock:
            self._buffer.append((topic, key, bytes(value)))
            full = len(self._buffer) >= MAX_BUFFERED
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record in one transaction; return when it is committed.

        Offsets are assigned inside the transaction (``max + 1`` per partition), so concurrent
        writers in other processes never clash. On failure the records stay buffered.
        """
        with self._lock:
            with self._buffer_lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return
            try:
                with _errors(self.path, f"write {len(batch)} records"):
                    self._write(batch)
            except (BusError, DiskFull):
                with self._buffer_lock:
                    self._buffer[:0] = batch
                raise
            if self.retention_s is not None and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY_S
                try:
                    with _errors(self.path, "prune the log"):
                        self._prune(self.retention_s)
                except (BusError, DiskFull) as exc:  # the records are written; pruning can wait for the next time
                    log.warning("%s", exc)

    def prune(self, older_than_s: float) -> int:
        """Delete the records every consuming group has committed that are older than
        ``older_than_s`` seconds (never a partition's newest); returns how many were deleted."""
        with self._lock, _errors(self.path, "prune the log"):
            return self._prune(older_than_s)

    def _prune(self, older_than_s: float) -> int:
        conn = self._conn
        ts_cutoff = time.time() - older_than_s
        plans: list[tuple[str, int, int, int]] = []  # topic, partition, first offset, first to keep
        with _transaction(conn, "DEFERRED"):  # plan in one snapshot
            committed: dict[str, dict[int, list[int]]] = {}
            groups: dict[str, set[str]] = {}
            for grp, topic, partition, offset in conn.execute("SELECT grp, topic, partition, offset FROM committed"):
                committed.setdefault(topic, {}).setdefault(int(partition), []).append(int(offset))
                groups.setdefault(topic, set()).add(grp)
            for grp, topics in conn.execute("SELECT grp, topics FROM members WHERE expires_at >= ?", (time.time(),)):
                for topic in json.loads(topics):  # a live member's group counts before its first commit
                    groups.setdefault(topic, set()).add(grp)
            for topic, partitions in committed.items():
                if topic in self.keep_topics:
                    continue
                for partition, offsets in partitions.items():
                    if len(offsets) < len(groups[topic]):
                        continue  # a group of this topic has committed nothing here yet
                    lo, hi = conn.execute("SELECT MIN(offset), MAX(offset) FROM records WHERE topic = ? AND "
                                          "partition = ?", (topic, partition)).fetchone()
                    if lo is None:
                        continue
                    bound = _first_at_or_after(conn, topic, partition, int(lo), min(min(offsets), int(hi)),
                                               ts_cutoff)
                    if bound > lo:
                        plans.append((topic, partition, int(lo), bound))
        deleted = 0
        for topic, partition, lo, bound in plans:  # short write transactions: other writers keep going
            for start in range(lo, bound, PRUNE_BATCH):
                with _transaction(conn, "IMMEDIATE"):
                    deleted += conn.execute("DELETE FROM records WHERE topic = ? AND partition = ? AND offset >= ? "
                                            "AND offset < ?", (topic, partition, start,
                                                               min(start + PRUNE_BATCH, bound))).rowcount
        if deleted:
            log.info("SQLite bus %s: pruned %d records (consumed, older than %.0f s)", self.path, deleted,
                     older_than_s)
        return deleted

    def groups(self) -> list[str]:
        """Every consumer group that has members or committed offsets, sorted."""
        with self._lock, _errors(self.path, "list consumer groups"):
            rows = self._conn.execute("SELECT grp FROM committed UNION SELECT grp FROM members ORDER BY 1")
            return [str(row[0]) for row in rows]

    def forget_group(self, group: str) -> None:
        """Remove a consumer group that will not come back (its offsets and members), so its
        committed offsets no longer hold records back from pruning.  ValueError while the group
        has live members: stop them first (forgetting a running group would make it start over)."""
        with self._lock, _errors(self.path, f"forget group {group}"), _transaction(self._conn, "IMMEDIATE"):
            (live,) = self._conn.execute("SELECT COUNT(*) FROM members WHERE grp = ? AND expires_at >= ?",
                                         (group, time.time())).fetchone()
            if live:
                raise ValueError(f"consumer group {group} has {live} live member(s); stop them (or wait for their "
                                 "session to expire) before forgetting it")
            for table in ("committed", "members", "generations"):
                self._conn.execute(f"DELETE FROM {table} WHERE grp = ?", (group,))

    def _write(self, batch: list[tuple[str, str, bytes]]) -> None:
        conn = self._conn
        now = time.time()
        with _transaction(conn, "IMMEDIATE"):
            missing = sorted({topic for topic, _, _ in batch} - self._topic_partitions.keys())
            counts = {**self._topic_partitions, **_ensure_topics(conn, missing, self.partitions)}
            next_offset: dict[TopicPartition, int] = {}
            rows = []
            for topic, key, value in batch:
                tp = (topic, partition_for(key, counts[topic]))
                offset = next_offset.get(tp)
                if offset is None:
                    (offset,) = conn.execute(
                        "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE topic = ? AND partition = ?", tp
                    ).fetchone()
                next_offset[tp] = offset + 1
                rows.append((tp[0], tp[1], offset, key, value, now))
            conn.executemany(
                "INSERT INTO records (topic, partition, offset, key, value, ts) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
        self._topic_partitions.update(counts)

    # -- consuming -------------------------------------------------------------------------

    def consumer(self, topics: Sequence[str], *, group: str, start: StartFrom = "earliest") -> SqliteConsumer:
        """Join ``group`` on ``topics`` now; with no committed offset, read from ``start``.

        ``latest`` means the end of each partition when it is assigned (for the first
        assignment: when this method returns).
        """
        if self._closed:
            raise BusError(f"SQLite bus {self.path} is closed")
        if isinstance(topics, str) or not topics:
            raise ValueError("topics must be a non-empty sequence of topic names")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        consumer = SqliteConsumer(self, list(dict.fromkeys(topics)), group=group, start=start)
        self._consumers.add(consumer)
        return consumer

    # -- inspection (for ``casework dlq`` and operators) ------------------------------------

    def topics(self) -> list[str]:
        """Every topic that has been published to or subscribed to, sorted."""
        with self._lock, _errors(self.path, "list topics"):
            return [row[0] for row in self._conn.execute("SELECT topic FROM topics ORDER BY topic")]

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get (0 for an empty or unknown topic)."""
        with self._lock, _errors(self.path, f"read the end offsets of {topic}"):
            row = self._conn.execute("SELECT partitions FROM topics WHERE topic = ?", (topic,)).fetchone()
            count = int(row[0]) if row else self.partitions
            ends = dict.fromkeys(range(count), 0)
            for partition, end in self._conn.execute(
                "SELECT partition, MAX(offset) + 1 FROM records WHERE topic = ? GROUP BY partition", (topic,)
            ):
                ends[int(partition)] = int(end)
            return ends

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Per partition, the offset ``group`` has committed on ``topic`` (partitions without one are left out)."""
        with self._lock, _errors(self.path, f"read the offsets of group {group}"):
            rows = self._conn.execute(
                "SELECT partition, offset FROM committed WHERE grp = ? AND topic = ?", (group, topic)
            ).fetchall()
            return {int(partition): int(offset) for partition, offset in rows}

    def close(self) -> None:
        """Flush what is buffered, close this bus's consumers (they leave their groups) and the file."""
        if self._closed:
            return
        try:
            self.flush()
        except DiskFull as exc:  # a batch whose offsets were never committed: it is delivered again
            log.debug("closing with records unwritten: %s", exc)
        finally:
            for consumer in list(self._consumers):
                consumer.close()
            self._closed = True
            with self._lock:
                self._conn.close()


class SqliteConsumer:
    """One member of a consumer group on a ``SqliteBus`` file, with its own connection.

    Joins when created and leaves on ``close``. Not meant to be polled from two threads at once
    (each call is locked, so it is safe, but the records would be split between them).
    """

    def __init__(self, bus: SqliteBus, topics: list[str], *, group: str, start: StartFrom) -> None:
        self.group = group
        self.topics = topics
        self.member_id = uuid.uuid4().hex
        self._path = bus.path
        self._default_partitions = bus.partitions
        self._session_timeout = bus.session_timeout
        self._heartbeat_every = min(1.0, bus.session_timeout / 4)
        self._start: StartFrom = start
        self._lock = threading.Lock()
        self._closed = False
        self._generation = -1
        self._next_heartbeat = 0.0
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._round_robin = 0
        self._idle_version: int | None = None  # data_version seen at the last empty fetch
        self._max_poll_interval = bus.max_poll_interval
        self._synchronous = bus.synchronous
        self._last_poll = time.monotonic()
        self._last_refresh = time.monotonic()
        self._pid = os.getpid()
        self._pid_start = process_start_time(self._pid) or ""
        with _errors(self._path, f"join group {group}"):
            self._conn = _connect(self._path, bus.synchronous)
            now = time.time()
            with _transaction(self._conn, "IMMEDIATE"):
                _ensure_topics(self._conn, topics, self._default_partitions)
                self._fence_dead_members()
                self._insert_member(now)
                _bump_generation(self._conn, group)
            self._heartbeat()
        self._beating = threading.Event()
        self._woken = threading.Event()  # set by wakeup(): a waiting poll returns at once
        self._beater = threading.Thread(target=self._beat, name=f"bus-heartbeat-{group}", daemon=True)
        self._beater.start()
        log.info("member %s joined group %s on %s, assigned %s", self.member_id, group, topics, self.assignment())

    def _insert_member(self, now: float) -> None:
        self._conn.execute(
            "INSERT INTO members (grp, member_id, topics, expires_at, joined_at, host, pid, pid_start) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.group, self.member_id, json.dumps(self.topics), now + self._session_timeout, now, _HOST,
             self._pid, self._pid_start),
        )

    def _fence_dead_members(self) -> None:
        """Drop members of this group on this host whose process is gone or is another process now."""
        rows = self._conn.execute(
            "SELECT member_id, pid, pid_start FROM members WHERE grp = ? AND host = ? AND pid > 0", (self.group, _HOST)
        ).fetchall()
        dead = [member for member, pid, started in rows if process_start_time(int(pid)) != started]
        for member in dead:
            self._conn.execute("DELETE FROM members WHERE grp = ? AND member_id = ?", (self.group, member))
        if dead:
            log.info("group %s: dropped %d member(s) whose process on this host is gone", self.group, len(dead))

    def _beat(self) -> None:
        """Keep this member alive while its process lives, however long a batch takes."""
        conn: sqlite3.Connection | None = None
        warned = False
        try:
            while not self._beating.wait(self._heartbeat_every):
                idle = time.monotonic() - self._last_poll
                if self._max_poll_interval is not None and idle > self._max_poll_interval:
                    if not warned:
                        log.warning("member %s of group %s has not polled for %.0f s (max %.0f s); its heartbeat "
                                    "stops so its partitions go to another member", self.member_id, self.group,
                                    idle, self._max_poll_interval)
                        warned = True
                    continue
                warned = False
                if time.monotonic() - self._last_refresh < self._heartbeat_every:
                    continue  # a poll or commit refreshed it just now
                try:
                    if conn is None:
                        conn = _connect(self._path, self._synchronous)
                    conn.execute("UPDATE members SET expires_at = ? WHERE grp = ? AND member_id = ?",
                                 (time.time() + self._session_timeout, self.group, self.member_id))
                    self._last_refresh = time.monotonic()
                except sqlite3.Error as exc:
                    log.log(logging.DEBUG if is_disk_full(exc) else logging.WARNING,  # the stage says it once
                            "member %s of group %s: heartbeat failed (%s); retrying", self.member_id,
                            self.group, exc)
        finally:
            if conn is not None:
                conn.close()

    def assignment(self) -> frozenset[TopicPartition]:
        """The (topic, partition) pairs this member currently reads, as of its last poll."""
        return self._assigned

    # -- group membership ------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Refresh this member, drop expired ones, and take up a new assignment if the group changed."""
        conn = self._conn
        now = time.time()
        with _transaction(conn, "IMMEDIATE"):
            changed = False
            refreshed = conn.execute(
                "UPDATE members SET expires_at = ? WHERE grp = ? AND member_id = ?",
                (now + self._session_timeout, self.group, self.member_id),
            ).rowcount
            if not refreshed:
                log.warning(
                    "member %s of group %s was silent for over %.1f s and was dropped; rejoining "
                    "(records it polled but did not commit go to the partitions' new owners)",
                    self.member_id,
                    self.group,
                    self._session_timeout,
                )
                self._insert_member(now)
                self._assigned, self._positions = frozenset(), {}  # like a new member: start from commits
                changed = True
            expired = conn.execute("DELETE FROM members WHERE grp = ? AND expires_at < ?", (self.group, now)).rowcount
            if expired:
                log.info("group %s: dropped %d member(s) silent for too long", self.group, expired)
                changed = True
            if changed:
                _bump_generation(conn, self.group)
            generation = _generation(conn, self.group)
            if generation != self._generation:
                self._rebalance(generation, now)
        self._next_heartbeat = self._last_refresh = time.monotonic()
        self._next_heartbeat += self._heartbeat_every

    def _rebalance(self, generation: int, now: float) -> None:
        """Recompute this member's partitions; new ones start at the committed offset. In a transaction."""
        conn = self._conn
        counts = _ensure_topics(conn, self.topics, self._default_partitions)
        owners = assign(_live_members(conn, self.group, now), counts)
        assigned = frozenset(tp for tp, owner in owners.items() if owner == self.member_id)
        positions = {tp: pos for tp, pos in self._positions.items() if tp in assigned}
        for tp in sorted(assigned - self._assigned):
            positions[tp] = self._starting_offset(tp)
        if assigned != self._assigned:
            log.info(
                "member %s of group %s: generation %d, partitions %s",
                self.member_id,
                self.group,
                generation,
                sorted(assigned),
            )
        self._assigned, self._positions, self._generation = assigned, positions, generation
        self._idle_version = None

    def _starting_offset(self, tp: TopicPartition) -> int:
        row = self._conn.execute(
            "SELECT offset FROM committed WHERE grp = ? AND topic = ? AND partition = ?", (self.group, *tp)
        ).fetchone()
        if row is not None:
            return int(row[0])
        sql = "MIN(offset)" if self._start == "earliest" else "MAX(offset) + 1"
        (offset,) = self._conn.execute(
            f"SELECT COALESCE({sql}, 0) FROM records WHERE topic = ? AND partition = ?", tp
        ).fetchone()
        return int(offset)

    # -- the Consumer port -----------------------------------------------------------------

    def poll(self, *, max_records: int = 100, timeout: float = 1.0) -> list[Record]:
        """Return up to ``max_records`` records from this member's partitions, waiting at most ``timeout`` s.

        Partitions are visited in rotating order so a busy one cannot starve the others.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        deadline = time.monotonic() + max(timeout, 0.0)
        self._last_poll = time.monotonic()
        while True:
            with self._lock, _errors(self._path, f"poll group {self.group}"):
                if self._closed:
                    raise BusError(f"consumer of group {self.group} on {self._path} is closed")
                if time.monotonic() >= self._next_heartbeat:
                    self._heartbeat()
                records = self._fetch(max_records)
                if records is None:  # the group changed under us: rebalance, then read again
                    self._heartbeat()
                    records = self._fetch(max_records) or []
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._woken.wait(min(POLL_INTERVAL_S, remaining)):
                self._woken.clear()
                return []

    def wakeup(self) -> None:
        """End a ``poll`` that is waiting now (or the next one) at once, with nothing: a stopping
        worker need not wait out its poll's timeout (kafka-python's ``KafkaConsumer.wakeup``)."""
        self._woken.set()

    def _fetch(self, max_records: int) -> list[Record] | None:
        """Read from the current positions in one snapshot; ``None`` if the generation moved on."""
        conn = self._conn
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if version == self._idle_version:
            return []  # nobody else has written since the last empty read
        out: list[Record] = []
        with _transaction(conn, "DEFERRED"):
            if _generation(conn, self.group) != self._generation:
                return None
            order = sorted(self._assigned)
            if not order:
                self._idle_version = version
                return []
            self._round_robin = (self._round_robin + 1) % len(order)
            order = order[self._round_robin :] + order[: self._round_robin]
            for topic, partition in order:
                want = max_records - len(out)
                if want <= 0:
                    break
                rows = conn.execute(
                    "SELECT offset, key, value FROM records WHERE topic = ? AND partition = ? AND offset >= ? "
                    "ORDER BY offset LIMIT ?",
                    (topic, partition, self._positions[(topic, partition)], want),
                ).fetchall()
                out.extend(Record(topic, partition, int(o), str(k), bytes(v)) for o, k, v in rows)
        for record in out:
            self._positions[(record.topic, record.partition)] = record.offset + 1
        self._idle_version = None if out else version
        return out

    def commit(self, records: Sequence[Record]) -> None:
        """Commit, per partition among ``records``, the offset after the highest one given.

        Partitions the group has meanwhile given to another live member are not committed
        (logged): their new owner has started from the last committed offset and will deliver
        those records again. Committing also counts as a heartbeat.
        """
        if not records:
            return
        highest: dict[TopicPartition, int] = {}
        for record in records:
            tp = (record.topic, record.partition)
            highest[tp] = max(highest.get(tp, -1), record.offset)
        with self._lock, _errors(self._path, f"commit offsets of group {self.group}"):
            if self._closed:
                raise BusError(f"consumer of group {self.group} on {self._path} is closed")
            conn = self._conn
            now = time.time()
            skipped: list[TopicPartition] = []
            with _transaction(conn, "IMMEDIATE"):
                conn.execute(
                    "UPDATE members SET expires_at = ? WHERE grp = ? AND member_id = ?",
                    (now + self._session_timeout, self.group, self.member_id),
                )
                topics = sorted({topic for topic, _ in highest})
                counts = _ensure_topics(conn, topics, self._default_partitions)
                owners = assign(_live_members(conn, self.group, now), counts)
                for tp, offset in sorted(highest.items()):
                    owner = owners.get(tp)
                    if owner is not None and owner != self.member_id:
                        skipped.append(tp)
                        continue
                    conn.execute(
                        "INSERT INTO committed (grp, topic, partition, offset, ts) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (grp, topic, partition) DO UPDATE SET offset = excluded.offset, ts = excluded.ts",
                        (self.group, *tp, offset + 1, now),
                    )
        if skipped:
            log.warning(
                "group %s: member %s no longer owns %s; not committing them (they will be delivered again)",
                self.group,
                self.member_id,
                skipped,
            )

    def close(self) -> None:
        """Leave the group at once (others take the partitions from the committed offsets) and close."""
        self._beating.set()
        if self._beater is not threading.current_thread():
            self._beater.join(5)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                with _transaction(self._conn, "IMMEDIATE"):
                    left = self._conn.execute(
                        "DELETE FROM members WHERE grp = ? AND member_id = ?", (self.group, self.member_id)
                    ).rowcount
                    if left:
                        _bump_generation(self._conn, self.group)
            except sqlite3.Error as exc:
                log.log(
                    logging.DEBUG if is_disk_full(exc) else logging.WARNING,  # the stage said "disk full" once
                    "member %s could not leave group %s cleanly (%s); it expires after %.1f s",
                    self.member_id,
                    self.group,
                    exc,
                    self._session_timeout,
                )
            finally:
                self._conn.close()
        log.info("member %s left group %s", self.member_id, self.group)
