"""Dead letters as people work with them: list, replay and discard entries (item x stage), with
the replays and discards recorded in the case store's audit trail.  The CLI (`casework dlq`)
and the HTTP routes call these; nothing here parses arguments or prints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.wiring import Runtime
from casestore import items
from ingest.dead_letters import DeadEntry, choose, collapse, outstanding, read_dead_letters, replay


@dataclass(frozen=True)
class Filters:
    items: Sequence[str] = ()
    stage: str | None = None
    error_class: str | None = None
    older_than: timedelta | None = None

    @property
    def empty(self) -> bool:
        return not self.items and self.stage is None and self.error_class is None and self.older_than is None


@dataclass(frozen=True)
class Listed:
    entry: DeadEntry
    state: str  # "dead" (needs a person), "replayed" or "discarded" (handled, nothing newer since)


def list_entries(rt: Runtime, *, filters: Filters = Filters(), include_handled: bool = False) -> list[Listed]:
    entries = choose(collapse(read_dead_letters(rt.bus)), items=filters.items, stage=filters.stage,
                     error_class=filters.error_class, older_than=filters.older_than)
    with rt.read_sessions() as session:
        handled = items.dead_letter_actions(session, keys=[e.entry_key[0] for e in entries])
    open_keys = {e.entry_key for e in outstanding(entries, {k: v[1] for k, v in handled.items()})}
    listed = []
    for entry in entries:
        if entry.entry_key in open_keys:
            listed.append(Listed(entry, "dead"))
        elif include_handled:
            listed.append(Listed(entry, handled[entry.entry_key][0].removeprefix("dlq.")))
    return listed


def _act(rt: Runtime, entries: Sequence[DeadEntry], *, action: str, actor: str, reason: str) -> None:
    with rt.sessions() as session, session.begin():
        for entry in entries:
            key, stage = entry.entry_key
            items.record_dead_letter_action(session, key=key, stage=stage, action=action,
                                            up_to=entry.last_failed_at, actor=actor, reason=reason)


def replay_entries(rt: Runtime, *, filters: Filters, actor: str, reason: str = "") -> list[DeadEntry]:
    """Publish each outstanding entry matching ``filters`` once, then record the replay.

    Entries are chosen from a snapshot read before anything is published, so letters the
    replayed items produce meanwhile wait for the next replay.  The record is written after the
    publish is durable: a crash between the two replays those entries again, never loses them.
    """
    chosen = [listed.entry for listed in list_entries(rt, filters=filters)]
    replay(rt.bus, chosen)
    _act(rt, chosen, action="dlq.replayed", actor=actor, reason=reason)
    return chosen


def discard_entries(rt: Runtime, *, filters: Filters, actor: str, reason: str) -> list[DeadEntry]:
    """Record that a person gave up on the outstanding entries matching ``filters``."""
    chosen = [listed.entry for listed in list_entries(rt, filters=filters)]
    _act(rt, chosen, action="dlq.discarded", actor=actor, reason=reason)
    return chosen


def wait_for_outcomes(rt: Runtime, replayed: Sequence[DeadEntry], *, since: datetime,
                      timeout: float) -> dict[str, str]:
    """``{item_id: outcome}`` for the replayed items, waiting up to ``timeout`` s for the stages:
    ``failed`` means it failed again after ``since``; items not settled by then are absent."""
    ids = [e.item_id for e in replayed if e.item_id]
    deadline = time.monotonic() + timeout
    settled: dict[str, str] = {}
    while True:
        with rt.read_sessions() as session:
            known = items.outcomes(session, item_ids=[i for i in ids if i not in settled])
        for item_id, info in known.items():
            if info.get("outcome") != "failed":
                settled[item_id] = str(info.get("outcome"))
            elif info.get("failed_at") is not None and info["failed_at"] > since:
                settled[item_id] = "failed"
        if len(settled) == len(ids) or time.monotonic() >= deadline:
            return settled
        time.sleep(0.5)
