"""The extract stage, and the runner that drives pipeline stages as threads of this process.

Apart from ``ingest.pipeline`` (classify and file: the matcher, filing, search) so that the extract
stage can be built and started from ``StageParts`` alone, before the later stages are imported and
loaded (their case types, calendars, matcher and search index): `casework ingest` starts reading
pages first and adds classify and file with ``PipelineRunner.add`` while the first pages are in
tesseract (issue 15.10). What extract publishes meanwhile waits on the bus for them: a consumer
group starts from its committed offsets, or from the start of the topic when it has none.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from casestore import items as item_service
from casestore.db import translate_errors
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.errors import Unavailable
from ingest.extract import Extraction, extract
from ingest.extract.limits import ExtractLimits
from ingest.faults import fault_point
from ingest.log_context import about
from ingest.messages import FILED_OUTCOMES, TOPIC_EXTRACTED, TOPIC_RAW, DeadLetter, ExtractedItem, RawItem
from ingest.worker import Output, RetryPolicy, Worker

if TYPE_CHECKING:
    from ingest.pipeline import ClassifyStage, FileStage

log = logging.getLogger(__name__)

STAGES = ("extract", "classify", "file")
T = TypeVar("T")


@dataclass(kw_only=True)
class StageParts:
    """What every stage needs, and all the extract stage needs (``ingest.pipeline.PipelineParts``
    adds what classify and file need)."""

    bus: Bus
    blobs: BlobStore
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]  # read-only work: no write lock on SQLite
    limits: ExtractLimits
    retry: RetryPolicy
    batch_size: int = 100
    extract_batch_size: int = 32
    file_batch_size: int = 500


class ExtractStage:
    """Reads the items of a poll in parallel: ``prepare`` starts each one's extraction on a pool of
    threads, largest first (``reading_order``), and the worker's per-message ``handle_batch``
    collects them as they finish (``done_order``), so a slow scan does not keep the other cores idle
    nor hold back the items read after it, while the worker's per-item policy (retry, dead letter)
    stays as it is. The threads mostly wait for tesseract processes (at most ``ocr_processes``, default
    one per core, of them at once in this process, ``ingest.extract.ocr``) and for the PDF reader
    child (one, its calls serialised). There are two threads per tesseract slot: while a page is in
    tesseract the next item is already decoded and its page prepared (deskew, PNM), so it starts
    the moment a slot is free instead of leaving that core idle while it is prepared (issue 15.10).
    A retry extracts again in the worker's thread. When ``stop`` (the worker's stop flag) is set,
    the items being read are finished and those not yet begun are not begun: they raise a retryable
    error, which the worker, stopping, leaves uncommitted, so the batch is delivered again and the
    stage ends within its grace period."""

    name = "extract"
    in_topic = TOPIC_RAW
    batched = False  # extraction errors are per file; no batch fast path to gain
    linger_s = 0.0

    def __init__(self, *, blobs: BlobStore, limits: ExtractLimits, sessions: sessionmaker[Session],
                 stop: threading.Event | None = None) -> None:
        self.blobs = blobs
        self.limits = limits
        self.sessions = sessions
        self.stop = stop or threading.Event()
        self.workers = limits.ocr_workers()  # tesseract processes at once
        self.threads = 2 * self.workers  # items read at once: one in tesseract, one being prepared, per slot
        self._pool: ThreadPoolExecutor | None = None
        self._started: dict[str, Future[Extraction]] = {}
        self._filed: set[str] = set()

    def warm_up(self) -> None:
        """Import the readers (PDF, images, OCR, mail, archives): called in the stage's thread as it
        starts, so the imports overlap the caller's own start-up instead of delaying the first item."""
        import ingest.extract.dispatch  # noqa: F401

    def prepare(self, messages: Sequence[RawItem]) -> None:
        """One store look-up per poll: which of these items are already filed; start reading the others."""
        with self.sessions() as session:
            known = item_service.outcomes(session, item_ids=[m.item_id for m in messages])
        self._filed = {i for i, info in known.items() if info.get("outcome") in FILED_OUTCOMES}
        self._forget_started()
        todo = {m.item_id: m for m in messages if m.item_id not in self._filed}
        if self.workers > 1 and len(todo) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="extract")
            self._started = {raw.item_id: self._pool.submit(self._extract_unless_stopping, raw)
                             for raw in reading_order(list(todo.values()))}

    def done_order(self, pairs: Sequence[tuple[T, RawItem]]) -> Iterator[tuple[T, RawItem]]:
        """The worker's (record, message) pairs of this poll in the order their reading finishes
        (``Worker._handle``): items read in the worker's thread (filed already, or no pool) first, in
        poll order, then each started item as it is done, so a page read early is handed on while
        larger ones begun before it are still in tesseract.  Pairs of one item keep their order.
        Items of different keys had no order on the bus to keep (they go to different partitions)."""
        waiting: dict[str, list[tuple[T, RawItem]]] = {}
        for pair in pairs:
            if pair[1].item_id in self._started:
                waiting.setdefault(pair[1].item_id, []).append(pair)
            else:
                yield pair
        by_future = {self._started[item_id]: item_id for item_id in waiting}
        for future in as_completed(by_future):
            yield from waiting[by_future[future]]

    def _extract_unless_stopping(self, raw: RawItem) -> Extraction:
        if self.stop.is_set():
            raise Unavailable(f"item {raw.item_id} not read: the extract stage is stopping; it will be read again")
        return self._extract(raw)

    def _extract(self, raw: RawItem) -> Extraction:
        with about(item_id=raw.item_id):  # OCR and parser warnings name the item (in a pool thread too)
            data = self.blobs.read(raw.blob_sha256)
            return extract(data, filename=raw.filename, content_type=raw.content_type, blobs=self.blobs,
                           limits=self.limits)

    def _forget_started(self) -> None:
        """Drop what an earlier poll started and nobody collected (its batch failed as a whole)."""
        for future in self._started.values():
            future.cancel()
        self._started = {}

    def handle_batch(self, messages: Sequence[RawItem]) -> list[Output]:
        out: list[Output] = []
        for raw in messages:
            if raw.item_id in self._filed:
                log.debug("item %s already filed; not extracting again", raw.item_id)
                continue
            started = self._started.pop(raw.item_id, None)
            result = started.result() if started is not None else self._extract(raw)
            fault_point("mid_extract")
            item = ExtractedItem(**raw.model_dump(), parts=result.parts, email=result.email,
                                 warnings=result.warnings)
            out.append((TOPIC_EXTRACTED, raw.item_id, item))
        return out


def reading_order(items: Sequence[RawItem]) -> list[RawItem]:
    """Largest first (by bytes; poll order among equals): a poll's longest scans start first, so the
    cores do not end a run with one long page in tesseract and the other core idle (issue 15.10:
    the last full page of 24 starting last cost up to a page's time at the end)."""
    return sorted(items, key=lambda raw: -raw.size)


def record_dead_letter(sessions: sessionmaker[Session], letter: DeadLetter) -> None:
    """Make a dead letter visible in the store, so whoever waits on the item sees why it failed."""
    source = ""
    with contextlib.suppress(ValueError):
        source = RawItem.model_validate_json(letter.envelope).source
    with sessions() as session, session.begin():
        item_service.record_failure(session, item_id=letter.item_id, stage=letter.stage,
                                    error_class=letter.error_class, message=letter.message, source=source,
                                    failed_at=letter.failed_at)


def make_stage(name: str, parts: StageParts, *, stop: threading.Event | None = None,
               ) -> ExtractStage | ClassifyStage | FileStage:
    """The stage called ``name``; ``stop`` is its worker's stop flag (the extract stage watches it).
    Classify and file need ``ingest.pipeline.PipelineParts``; extract needs only ``StageParts``."""
    if name == "extract":
        return ExtractStage(blobs=parts.blobs, limits=parts.limits, sessions=parts.read_sessions, stop=stop)
    from ingest.pipeline import PipelineParts, make_later_stage  # the matcher, filing and search

    if name in STAGES and not isinstance(parts, PipelineParts):
        raise TypeError(f"the {name} stage needs PipelineParts (Runtime.pipeline_parts), not {type(parts).__name__}")
    return make_later_stage(name, parts, stop=stop)  # type: ignore[arg-type]  # checked above for known names


class PipelineRunner:
    """Stages as worker threads in this process: the embedded default's `serve` and `ingest`.

    ``add`` starts more stages on a running runner (`casework ingest` starts extract first, and
    classify and file once they are loaded); they share its stop flag, commit event and errors."""

    def __init__(self, parts: StageParts, *, stages: Sequence[str] = STAGES, group_prefix: str = "casework",
                 pause_log_level: int = logging.WARNING) -> None:
        self.stop = threading.Event()
        self.committed = threading.Event()  # set after any stage commits a batch: outcomes may have changed
        self.group_prefix = group_prefix
        self.pause_log_level = pause_log_level
        self.workers: list[Worker] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self._running = False
        self._new_workers(parts, stages)

    def _new_workers(self, parts: StageParts, stages: Sequence[str]) -> list[Worker]:
        workers = [
            Worker(bus=parts.bus, handler=make_stage(name, parts, stop=self.stop), group=f"{self.group_prefix}.{name}",
                   retry=parts.retry, stop=self.stop,
                   batch_size={"extract": parts.extract_batch_size, "file": parts.file_batch_size}.get(
                       name, parts.batch_size),
                   on_dead=lambda letter: record_dead_letter(parts.sessions, letter), guard=translate_errors,
                   pause_log_level=self.pause_log_level, on_commit=self.committed.set)
            for name in stages
        ]
        self.workers.extend(workers)
        return workers

    def start(self) -> None:
        self._running = True
        for worker in self.workers[len(self.threads):]:
            self._start(worker)

    def add(self, parts: StageParts, stages: Sequence[str]) -> None:
        """More stages (``parts`` must serve them: ``PipelineParts`` for classify and file), started
        at once if the runner is running; not after ``close``."""
        if self.stop.is_set():
            raise RuntimeError("the pipeline runner is closed")
        workers = self._new_workers(parts, stages)
        if self._running:
            for worker in workers:
                self._start(worker)

    def _start(self, worker: Worker) -> None:
        t = threading.Thread(target=self._run, args=(worker,), name=f"stage-{worker.handler.name}", daemon=True)
        t.start()
        self.threads.append(t)

    def _run(self, worker: Worker) -> None:
        try:
            warm_up = getattr(worker.handler, "warm_up", None)
            if warm_up is not None:
                warm_up()
            worker.run()
        except BaseException as exc:
            log.exception("stage %s stopped on an error", worker.handler.name)
            self.errors.append(exc)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def disk_full(self) -> list[str]:
        """Why each stage that waits for disk space waits (empty while none does)."""
        return [w.paused for w in self.workers if w.paused is not None]

    def states(self) -> dict[str, str]:
        """Each stage: running (with its restarts and last error, if any) or stopped."""
        out = {}
        for w, t in zip(self.workers, self.threads, strict=False):
            state = "running" if t.is_alive() else "stopped"
            if w.paused is not None:
                state = f"paused ({w.paused})"
            if w.restarts:
                state += f" (restarted {w.restarts}x; last: {w.last_error})"
            out[w.handler.name] = state
        return out

    def close(self, timeout: float = 30.0) -> None:
        """Stop the stages, then let each finish what it held back (the file stage's deferred index
        writes, ``FileStage.finish``)."""
        self.stop.set()
        for w in self.workers:
            w.wake()  # an idle stage waiting in a poll stops now
        for t in self.threads:
            t.join(timeout)
        for w in self.workers:
            finish = getattr(w.handler, "finish", None)
            if finish is not None:
                try:
                    finish()
                except Exception:
                    log.exception("stage %s: finishing failed", w.handler.name)


__all__ = ["STAGES", "ExtractStage", "PipelineRunner", "StageParts", "make_stage", "reading_order",
           "record_dead_letter"]
