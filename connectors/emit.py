"""What every connector does with an inbound thing: blob, RawItem, publish, count.

``Emitter.emit`` stores the bytes, builds the RawItem (``ingest.intake.make_raw_item``: the
idempotency key is channel + source id, else the content's sha256), and publishes it to
``intake.raw`` unless the connector's state says that key was already published, in which case
it returns the same item marked as a duplicate. Failures are counted and raised to the caller,
which decides what the sender is told (a 4xx, an SMTP code, a ``.failed/`` folder).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from connectors.metrics import REGISTRY, ConnectorStats, Registry
from connectors.state import StateStore
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.intake import make_raw_item, publish_raw
from ingest.messages import Channel, RawItem, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Emitted:
    item: RawItem
    duplicate: bool


class Emitter:
    def __init__(self, name: str, *, bus: Bus, blobs: BlobStore, state: StateStore | None = None,
                 registry: Registry | None = None, kind: str = "") -> None:
        self.name = name
        self.bus = bus
        self.blobs = blobs
        self.state = state
        self.stats: ConnectorStats = (registry or REGISTRY).get(name, kind)
        self._pending: list[tuple[RawItem, float]] = []

    def emit(self, data: bytes, *, channel: Channel, filename: str | None, source: str,
             source_id: str | None = None, content_type: str | None = None,
             metadata: Mapping[str, str] | None = None, source_time: datetime | None = None,
             defer: bool = False) -> Emitted:
        """Publish ``data`` as one item (or recognise it as already published).

        With ``defer=True`` the item is only queued: ``commit()`` publishes every queued item with one
        flush (a watcher does that once per scan, before it moves the files away); ``discard()`` drops
        them. Deferred emits are for one thread at a time; immediate ones may come from many.
        """
        try:
            item = make_raw_item(blobs=self.blobs, data=data, channel=channel, filename=filename, source=source,
                                 content_type=content_type, source_id=source_id,
                                 metadata={k: v for k, v in (metadata or {}).items() if v is not None})
            known = self.state is not None and self.state.seen(item.idempotency_key)
            if known or (defer and any(p.idempotency_key == item.idempotency_key for p, _ in self._pending)):
                self.stats.record_duplicate()
                log.info("%s: %s already published as item %s; not again", self.name, item.idempotency_key,
                         item.item_id)
                return Emitted(item, duplicate=True)
            lag = (utcnow() - source_time).total_seconds() if source_time is not None else 0.0
            if defer:
                self._pending.append((item, lag))
                return Emitted(item, duplicate=False)
            publish_raw(self.bus, [item])
        except Exception as exc:
            self.stats.record_failed(f"{type(exc).__name__}: {exc}")
            raise
        self._published([(item, lag)])
        return Emitted(item, duplicate=False)

    def commit(self) -> int:
        """Publish the deferred items with one flush; returns how many."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        try:
            publish_raw(self.bus, [item for item, _ in pending])
        except Exception as exc:
            self.stats.record_failed(f"{type(exc).__name__}: {exc}")
            raise
        self._published(pending)
        return len(pending)

    def savepoint(self) -> int:
        """A mark to ``rollback_to``: how many items are deferred now."""
        return len(self._pending)

    def rollback_to(self, mark: int = 0) -> None:
        """Drop the items deferred since ``mark`` (all of them by default)."""
        del self._pending[mark:]

    def _published(self, done: list[tuple[RawItem, float]]) -> None:
        for item, lag in done:
            if self.state is not None:
                self.state.mark(item.idempotency_key, item.item_id)
            self.stats.record_received(lag)
            log.info("%s: published item %s (%s, %s, %d bytes) from %s", self.name, item.item_id,
                     item.idempotency_key, item.channel, item.size, item.source,
                     extra={"connector": self.name, "item_id": item.item_id, "idempotency_key": item.idempotency_key,
                            "channel": item.channel, "lag_s": round(lag, 3)})

    def failed(self, what: str, exc: BaseException | str) -> None:
        """Count and log an input that could not be taken; the connector goes on with the rest."""
        message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.stats.record_failed(message)
        log.error("%s: %s could not be taken: %s", self.name, what, message,
                  extra={"connector": self.name, "input": what, "error": message})
