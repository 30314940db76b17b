"""Reading, collapsing and replaying the dead-letter topic ``intake.dead``.

The topic is append-only: every failed attempt adds a letter.  People work with *entries*:
one per item and stage, with the number of attempts, the newest error and the newest
envelope (``collapse``).  A replay publishes each chosen entry's newest envelope once, from a
snapshot read before anything is published, so letters that the replayed items produce while
the replay runs are never replayed by the same run (the old committed-group replay chased its
own tail: 5 letters became 4,470).  Which entries were replayed or discarded, and up to which
letter, is the caller's record (the CLI keeps it in the case store's audit trail); this module
only takes it as ``handled``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.bus.port import Bus
from ingest.messages import TOPIC_DEAD, DeadLetter, decode, utcnow

log = logging.getLogger(__name__)

EntryKey = tuple[str, str]  # (item id, or the record key when the envelope had no item id; stage)


@dataclass(frozen=True)
class DeadEntry:
    """One item's failure in one stage, however many times it failed there."""

    item_id: str | None
    stage: str
    topic: str
    key: str
    error_class: str
    message: str
    retryable: bool
    attempts: int              # letters for this item and stage (each with its own retries inside)
    first_failed_at: datetime
    last_failed_at: datetime
    envelope: str              # the newest letter's original message

    @property
    def entry_key(self) -> EntryKey:
        return (self.item_id or self.key, self.stage)


def read_dead_letters(bus: Bus, *, idle_polls: int = 2, timeout: float = 0.5) -> list[DeadLetter]:
    """Every dead letter on the topic, oldest first (a throwaway group, nothing committed)."""
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


def collapse(letters: Iterable[DeadLetter]) -> list[DeadEntry]:
    """One entry per (item, stage), oldest first by its newest failure."""
    entries: dict[EntryKey, DeadEntry] = {}
    for letter in sorted(letters, key=lambda d: d.failed_at):
        key = (letter.item_id or letter.key, letter.stage)
        seen = entries.get(key)
        entries[key] = DeadEntry(
            item_id=letter.item_id, stage=letter.stage, topic=letter.topic, key=letter.key,
            error_class=letter.error_class, message=letter.message, retryable=letter.retryable,
            attempts=(seen.attempts if seen else 0) + 1,
            first_failed_at=seen.first_failed_at if seen else letter.failed_at,
            last_failed_at=letter.failed_at, envelope=letter.envelope,
        )
    return sorted(entries.values(), key=lambda e: e.last_failed_at)


def outstanding(entries: Iterable[DeadEntry], handled: Mapping[EntryKey, datetime]) -> list[DeadEntry]:
    """The entries with a letter newer than the last replay or discard recorded for them."""
    out: list[DeadEntry] = []
    for entry in entries:
        up_to = handled.get(entry.entry_key)
        if up_to is None or entry.last_failed_at > up_to:
            out.append(entry)
    return out


def choose(entries: Iterable[DeadEntry], *, items: Sequence[str] = (), stage: str | None = None,
           error_class: str | None = None, older_than: timedelta | None = None,
           now: datetime | None = None) -> list[DeadEntry]:
    """The entries matching every filter given (items: any of these ids; older_than: last failure age)."""
    wanted = set(items)
    cutoff = (now or utcnow()) - older_than if older_than is not None else None
    return [e for e in entries
            if (not wanted or (e.item_id or e.key) in wanted)
            and (stage is None or e.stage == stage)
            and (error_class is None or e.error_class == error_class)
            and (cutoff is None or e.last_failed_at <= cutoff)]


def replay(bus: Bus, entries: Sequence[DeadEntry]) -> int:
    """Publish each entry's newest envelope to the topic it failed on, once; durable on return."""
    for entry in entries:
        bus.publish(entry.topic, key=entry.key, value=entry.envelope.encode("utf-8"))
    if entries:
        bus.flush()
    log.info("replayed %d dead-letter entries", len(entries))
    return len(entries)
