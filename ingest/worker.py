"""The worker loop: poll, handle, publish, flush, commit — in that order.

Delivery is at-least-once: offsets are committed only after every output of a batch is durable
on the bus, so a crash between publish and commit redelivers the batch, and the stages are
idempotent on ``item_id`` so redelivery never duplicates a document.

A batch is first handled as a whole (the fast path: one transaction for many items). If that
raises, each message is handled alone, so one bad message cannot hold up the others:

* an error whose class says ``outage`` (the store or the bus is down: nothing is wrong with the
  message) is never dead-lettered: the batch stays uncommitted, the worker backs off and rejoins
  from the committed offsets, as long as the outage lasts;
* an error whose class says ``retryable`` is retried with exponential backoff up to
  ``max_attempts``, then dead-lettered;
* any other error is dead-lettered at once, with the stage, the error class and its message, to
  ``intake.dead`` (and to ``on_dead``, which the pipeline uses to record the failure in the store).

``stop`` (an Event, set by SIGTERM/SIGINT in the entry point) ends the loop after the current
batch is committed.  The loop supervises itself: whatever escapes a batch (an outage, a bug) is
logged, counted in ``restarts`` / ``last_error`` (shown by ``/health``), and the worker rejoins
after a backoff that grows while the failures go on, so a stage never stops for good.
A full disk (an error whose class says ``disk_full``) is an outage too, said once per minute at
most (at ``pause_log_level``; ``casework ingest`` passes DEBUG and prints one message of its own)
and shown in ``paused`` until a batch goes through again; the bus's own retries stay quiet.
A stage that handles one message at a time (``batched = False``: extract) publishes each
message's outputs as it goes and flushes them once the poll has taken ``hand_on_after_s``, so a
finished scan goes on to classify and file while the rest of its poll is read.
``guard`` wraps every call into the handler (the pipeline passes the store's error translation,
so a lost database connection arrives here as an ``outage``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from ingest.bus.port import Bus, Consumer, Record
from ingest.faults import fault_point
from ingest.log_context import about, stage_var
from ingest.messages import TOPIC_DEAD, DeadLetter, decode, encode, utcnow
from ingest.stage_metrics import series_for

log = logging.getLogger(__name__)

Output = tuple[str, str, BaseModel]  # (topic, key, message)
LINGER_GAP_S = 0.1  # a lingering poll ends after this long without a new record (Worker._poll)
HAND_ON_AFTER_S = 0.25  # a one-message-at-a-time stage makes outputs durable this often (Worker._hand_on_early)


class StageHandler(Protocol):
    name: str
    in_topic: str
    batched: bool  # True: try the whole poll in one call first; False: one message per call
    linger_s: float  # wait up to this long for a poll to fill up (fewer, larger batches downstream)

    def prepare(self, messages: Sequence[Any]) -> None:
        """Called once per poll before handling: batch look-ups a per-message stage needs."""
        ...

    def handle_batch(self, messages: Sequence[Any]) -> list[Output]:
        """Handle messages; return what to publish. Must be idempotent on item_id."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1))))


class Worker:
    def __init__(
        self,
        *,
        bus: Bus,
        handler: StageHandler,
        group: str,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        poll_timeout: float = 0.5,
        on_dead: Callable[[DeadLetter], None] | None = None,
        stop: threading.Event | None = None,
        guard: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        pause_log_level: int = logging.WARNING,
        on_commit: Callable[[], None] | None = None,
        hand_on_after_s: float = HAND_ON_AFTER_S,
    ) -> None:
        self.bus = bus
        self.on_commit = on_commit  # told after each committed batch (a waiter may look for outcomes)
        self.hand_on_after_s = hand_on_after_s  # see _hand_on_early
        self._durable_at, self._published = 0.0, 0
        self._consumer: Consumer | None = None  # the group membership run() holds, for wake()
        self.handler = handler
        self.group = group
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.on_dead = on_dead
        self.stop = stop or threading.Event()
        self.guard = guard
        self.restarts = 0
        self.last_error: str | None = None
        self.paused: str | None = None  # why the stage waits for space (a disk-full message), if it does
        self.pause_log_level = pause_log_level
        self._pause_said = 0.0  # monotonic time the pause was last logged
        self.processed = 0
        self.dead = 0
        self.cpu_seconds = 0.0  # this stage's thread CPU time spent on batches (not idle polls)
        self.series = series_for(handler.name)  # Prometheus series (ingest.stage_metrics)

    def run(self) -> None:
        """Run until ``stop`` is set; the consumer leaves its group cleanly at the end."""
        stage_var.set(self.handler.name)  # this thread's log lines are about its stage
        consumer = self._join_unless_stopping()
        if consumer is None:
            return
        log.info("stage %s consuming %s as group %s", self.handler.name, self.handler.in_topic, self.group)
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    self.run_once(consumer)
                    failures = 0
                    if self.paused is not None:
                        log.log(self.pause_log_level, "stage %s: space returned; resuming", self.handler.name)
                        self.paused = None
                except Exception as exc:
                    if self.stop.is_set():
                        log.info("stage %s: batch left uncommitted at shutdown (%s); it will be redelivered",
                                 self.handler.name, type(exc).__name__)
                        break
                    failures += 1
                    self.restarts += 1
                    self.series.restarts.inc()
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    delay = self.retry.delay(failures)
                    if getattr(exc, "disk_full", False):
                        self._pause(exc)
                    elif getattr(exc, "retryable", False):
                        log.warning("stage %s: %s; rejoining from committed offsets in %.1f s",
                                    self.handler.name, self.last_error, delay)
                    else:
                        log.exception("stage %s: unexpected error; restarting from committed offsets in %.1f s",
                                      self.handler.name, delay)
                    # Rejoin from the committed offsets so nothing is skipped and nothing is lost.
                    with contextlib.suppress(Exception):
                        consumer.close()
                    if self.stop.wait(delay):
                        break
                    rejoined = self._join_unless_stopping()
                    if rejoined is None:
                        break  # stopped while the bus refused the join (a full disk): no traceback
                    consumer = rejoined
        finally:
            consumer.close()
            log.info("stage %s stopped after %d messages (%d dead-lettered)",
                     self.handler.name, self.processed, self.dead)

    def _join_unless_stopping(self) -> Consumer | None:
        """Join the group (``_rejoin``); None when ``stop`` was set while the join kept failing."""
        try:
            consumer = self._consumer = self._rejoin()
        except Exception:
            if self.stop.is_set():
                return None
            raise
        return consumer

    def wake(self) -> None:
        """After ``stop`` is set: end the poll ``run`` may be waiting in, so the stage stops now
        rather than after its poll timeout (a consumer without ``wakeup`` just times out)."""
        wakeup = getattr(self._consumer, "wakeup", None)
        if wakeup is not None:
            wakeup()

    def _pause(self, exc: BaseException) -> None:
        """A full disk: say so once a minute at most; the bus's retries below stay quiet."""
        self.paused = str(exc)[:500]
        level = logging.DEBUG
        if time.monotonic() - self._pause_said >= 60.0:
            self._pause_said, level = time.monotonic(), self.pause_log_level
        log.log(level, "stage %s paused: %s (retrying, at most %.0f s apart, until there is space)",
                self.handler.name, self.paused, self.retry.backoff_max_s)

    def _rejoin(self) -> Consumer:
        """Join the group again, waiting out a bus that is itself down."""
        attempt = 0
        while True:
            try:
                return self.bus.consumer([self.handler.in_topic], group=self.group)
            except Exception as exc:
                attempt += 1
                if not getattr(exc, "retryable", False) and attempt > 3:
                    raise
                if getattr(exc, "disk_full", False):
                    self._pause(exc)
                else:
                    log.warning("stage %s: cannot join %s yet (%s: %s)", self.handler.name, self.group,
                                type(exc).__name__, exc)
                if self.stop.wait(self.retry.delay(attempt)):
                    raise

    def _poll(self, consumer: Consumer) -> list[Record]:
        """One batch: what is there, topped up for up to the stage's ``linger_s`` (like Kafka's
        fetch.max.wait) while more keeps coming: a wait of ``LINGER_GAP_S`` with nothing new ends
        it, so a burst is still gathered into one batch (one index commit) but the last item of a
        trickle (a scan read after the others) is not held for the whole linger."""
        records = consumer.poll(max_records=self.batch_size, timeout=self.poll_timeout)
        linger = getattr(self.handler, "linger_s", 0.0)
        if records and linger > 0 and len(records) < self.batch_size:
            deadline = time.monotonic() + linger
            while len(records) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                more = consumer.poll(max_records=self.batch_size - len(records), timeout=min(left, LINGER_GAP_S))
                if not more:
                    break
                records.extend(more)
        return records

    def run_once(self, consumer: Consumer) -> int:
        records = self._poll(consumer)
        if not records:
            return 0
        started, began = time.thread_time(), time.perf_counter()
        self._durable_at, self._published = time.monotonic(), 0
        self._publish(self._handle(records))
        self.bus.flush()
        if self._published:
            fault_point("after_publish")
        consumer.commit(records)
        if self.on_commit is not None:
            self.on_commit()
        self.processed += len(records)
        self.cpu_seconds += time.thread_time() - started
        self.series.items.inc(len(records))
        self.series.batch_seconds.observe(time.perf_counter() - began)
        return len(records)

    def _publish(self, outputs: list[Output]) -> None:
        for topic, key, message in outputs:
            self.bus.publish(topic, key=key, value=encode(message))
        self._published += len(outputs)

    def _hand_on_early(self, outputs: list[Output]) -> None:
        """One message's outputs, published at once; durable (flushed) once the batch has taken
        ``hand_on_after_s``: a poll of slow items (scans being read) lets each finished item go to
        the next stage while the rest are read, instead of holding all of them until the slowest is
        done; a poll of fast items still ends in one flush.  The offsets are committed at the end
        as before, so a crash redelivers the whole poll (the stages are idempotent on item_id)."""
        self._publish(outputs)
        if outputs and time.monotonic() - self._durable_at >= self.hand_on_after_s:
            self.bus.flush()
            self._durable_at = time.monotonic()

    def _handle(self, records: list[Record]) -> list[Output]:
        decoded: list[tuple[Record, Any]] = []
        for record in records:
            try:
                decoded.append((record, decode(record.topic, record.value)))
            except (ValidationError, ValueError) as exc:
                self._dead_letter(record, None, exc, attempts=1)
        if not decoded:
            return []
        with self.guard():
            self.handler.prepare([m for _, m in decoded])
        if not self.handler.batched:
            done_order = getattr(self.handler, "done_order", None)  # the extract stage: as each is read
            for record, message in (decoded if done_order is None else done_order(decoded)):
                self._hand_on_early(self._handle_one(record, message))
            return []
        try:
            with self.guard():
                return self.handler.handle_batch([m for _, m in decoded])
        except Exception as exc:
            if getattr(exc, "outage", False):
                raise  # the store or bus is down: leave the batch uncommitted, back off, redeliver
            if len(decoded) == 1:
                log.debug("stage %s: single message failed in batch path: %s", self.handler.name, exc)
            else:
                log.warning("stage %s: batch of %d failed (%s: %s); handling one by one",
                            self.handler.name, len(decoded), type(exc).__name__, exc)
        outputs: list[Output] = []
        for record, message in decoded:
            outputs.extend(self._handle_one(record, message))
        return outputs

    def _handle_one(self, record: Record, message: Any) -> list[Output]:
        with about(item_id=getattr(message, "item_id", None) or record.key or None):
            return self._handle_one_item(record, message)

    def _handle_one_item(self, record: Record, message: Any) -> list[Output]:
        attempt = 1
        while True:
            try:
                with self.guard():
                    return self.handler.handle_batch([message])
            except Exception as exc:
                if getattr(exc, "outage", False):
                    raise  # nothing is wrong with this message: never dead-letter it for an outage
                retryable = bool(getattr(exc, "retryable", False))
                if retryable and attempt < self.retry.max_attempts and not self.stop.is_set():
                    delay = self.retry.delay(attempt)
                    log.warning("stage %s: item %s failed (%s: %s), retry %d/%d in %.1fs",
                                self.handler.name, getattr(message, "item_id", "?"), type(exc).__name__,
                                exc, attempt, self.retry.max_attempts - 1, delay)
                    if self.stop.wait(delay):
                        raise  # shutting down: leave it uncommitted, it will be redelivered
                    self.series.retried.inc()
                    attempt += 1
                    continue
                if retryable and self.stop.is_set():
                    raise
                self._dead_letter(record, message, exc, attempts=attempt)
                return []

    def _dead_letter(self, record: Record, message: Any, exc: BaseException, *, attempts: int) -> None:
        item_id = getattr(message, "item_id", None) or (record.key or None)
        letter = DeadLetter(
            item_id=item_id,
            stage=self.handler.name,
            topic=record.topic,
            error_class=type(exc).__name__,
            message=str(exc) or repr(exc),
            retryable=bool(getattr(exc, "retryable", False)),
            attempts=attempts,
            failed_at=utcnow(),
            key=record.key,
            envelope=record.value.decode("utf-8", errors="replace"),
        )
        log.error("stage %s: item %s dead-lettered: %s: %s", self.handler.name, item_id,
                  letter.error_class, letter.message, extra={"item_id": item_id})
        self.bus.publish(TOPIC_DEAD, key=record.key, value=encode(letter))
        self.dead += 1
        self.series.failed.inc()
        if self.on_dead is not None:
            try:
                self.on_dead(letter)
            except Exception:
                log.exception("stage %s: could not record the dead letter of %s in the store",
                              self.handler.name, item_id)
