"""`casework ingest`: store and publish files, run the pipeline, wait for every outcome.

On the embedded default every stage runs in this process; on Kafka the stages run in
`casework worker` processes and this only publishes and waits. The outcome of each item is read
from the store (filed items and recorded dead letters), which both shapes share.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.wiring import Runtime
from casestore import items as item_service
from casestore.db import translate_errors
from ingest.errors import BadInput, DiskFull
from ingest.extract.ocr import TESSERACT_STARTED
from ingest.intake import check_channel, describe_raw_item, expand_paths, infer_channel, printable, publish_raw
from ingest.messages import FILED_OUTCOMES, Channel, RawItem

if TYPE_CHECKING:  # the stages run here only on the embedded bus; on Kafka this publishes and waits
    from api.stage_processes import StageProcesses
    from ingest.runner import PipelineRunner

log = logging.getLogger(__name__)

OUTCOMES = ("attached", "new_case", "triage", "noise", "failed")


@dataclass
class IngestResult:
    source: str
    item_id: str | None = None
    outcome: str | None = None
    case_ref: str | None = None
    doc_type: str | None = None
    error: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "item_id": self.item_id, "outcome": self.outcome,
                "case_ref": self.case_ref, "doc_type": self.doc_type, "error": self.error,
                "duplicate": self.duplicate}


@dataclass
class IngestReport:
    results: list[IngestResult] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(OUTCOMES, 0)
        for r in self.results:
            c[r.outcome or "failed"] += 1
        return c

    def as_dict(self) -> dict[str, Any]:
        return {**self.counts(), "seconds": round(self.seconds, 3), "results": [r.as_dict() for r in self.results]}


COMMIT_WAIT_S = 1.0  # the longest wait for a stage's commit before the store is read anyway


def _settled(info: dict[str, Any] | None, failure_floor: int) -> bool:
    """Filed, or failed in this run: a failure recorded after the run began (by id, not by clock:
    a worker's clock may run behind this machine's)."""
    if not info:
        return False
    if info.get("outcome") in FILED_OUTCOMES:
        return True
    return info.get("outcome") == "failed" and int(info.get("failure_id") or 0) > failure_floor


def run_ingest(
    rt: Runtime,
    paths: Sequence[Path],
    *,
    channel: Channel | None = None,
    timeout: float = 3600.0,
    on_total: Callable[[int], None] = lambda n: None,
    on_progress: Callable[[int], None] = lambda n: None,
    stage_cpu: dict[str, float] | None = None,
) -> IngestReport:
    """Ingest ``paths``; ``stage_cpu``, if given, receives each in-process stage's CPU seconds."""
    started_clock = time.perf_counter()
    results: list[IngestResult] = []
    files = list(expand_paths(paths))
    on_total(len(files))
    with rt.read_sessions() as session:
        failure_floor = item_service.last_failure_id(session)
    runner: PipelineRunner | StageProcesses | None = None
    threads: PipelineRunner | None = None  # the runner, when its stages are threads of this process
    pending: dict[str, None] = {}  # in publish order, roughly the order outcomes arrive in
    seen: dict[str, bool] = {}  # item id -> filed before this run, for files given twice
    folders: dict[str, str] = {}  # folder -> resolved, for each file's source
    later: tuple[str, ...] = ()  # stages of ``threads`` not started yet: started after the first chunk
    try:
        if rt.settings.is_embedded_bus:
            # Started first, so the stages work on the first files while later ones are still read.
            mode = rt.settings.worker.stage_processes
            if mode == "processes" or (mode == "auto" and len(files) >= rt.settings.worker.process_threshold):
                from api.stage_processes import StageProcesses

                runner = StageProcesses(rt.settings, pause_log_level=logging.DEBUG)  # we say it once, below
            else:
                from ingest.runner import STAGES, PipelineRunner

                # Extract alone first (issue 15.10): it needs none of classify's and file's parts, whose
                # imports and loading (matcher, case types, calendars, search index) took most of the
                # time before the first page reached tesseract; they are loaded once the first chunk is
                # published, while the first pages are read, and what extract hands on waits on the bus.
                runner = threads = PipelineRunner(rt.stage_parts(), stages=STAGES[:1], pause_log_level=logging.DEBUG)
                later = STAGES[1:]
            runner.start()
        for chunk in _chunks(files):
            _stop_if_disk_full(rt, runner)
            chunk_results = _publish_chunk(rt, chunk, channel, seen, folders)
            results.extend(chunk_results)
            pending.update((r.item_id, None) for r in chunk_results if r.item_id and r.outcome is None)
            on_progress(sum(1 for r in results if r.outcome is not None))
            if later and threads is not None:
                if pending:
                    _wait_for_first_reading(threads)
                _start_later_stages(rt, threads, later)
                later = ()
        if later and threads is not None:  # nothing to publish (no files): start them all the same
            _start_later_stages(rt, threads, later)
    except BaseException:
        if runner is not None:
            runner.close()
        raise
    timed_out = False
    try:
        outcomes: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        # Polling the store 20 times a second cost more CPU than the stages' own work on a long OCR run
        # (issue 15.10); with the stages as threads here, their commits say when to look.
        committed = threads.committed if threads is not None else None
        while pending:
            window = list(itertools.islice(pending, POLL_WINDOW))  # not all 100,000 ids on every poll
            if committed is not None:
                committed.clear()  # a batch committed from here on wakes the wait below
            with rt.read_sessions() as session:
                found = item_service.outcomes(session, item_ids=window)
            settled = 0
            for item_id, info in found.items():
                if _settled(info, failure_floor):
                    outcomes[item_id] = info
                    del pending[item_id]
                    settled += 1
            finished = sum(1 for r in results if r.outcome is not None or (r.item_id in outcomes))
            on_progress(finished)
            if not pending:
                break
            _stop_if_disk_full(rt, runner)
            if runner is not None and not runner.alive():
                raise RuntimeError(f"a pipeline stage stopped: {runner.errors[-1] if runner.errors else 'unknown'}")
            if time.monotonic() > deadline:
                timed_out = True
                break
            if settled < len(window):  # a whole window done: look at the next at once
                if committed is not None:  # stages in this process: look again when one commits a batch
                    committed.wait(COMMIT_WAIT_S)
                else:
                    time.sleep(0.05 if len(pending) < 50 else 0.25)
    finally:
        if runner is not None:
            runner.close()
            if stage_cpu is not None and threads is not None:
                stage_cpu.update({w.handler.name: w.cpu_seconds for w in threads.workers})
            elif stage_cpu is not None and isinstance(runner, StageProcesses):
                stage_cpu.update(runner.cpu_seconds())
    for r in results:
        if r.item_id in outcomes:
            info = outcomes[r.item_id]
            r.outcome = info.get("outcome")
            r.case_ref = info.get("case_ref")
            r.doc_type = info.get("doc_type")
            r.error = info.get("error")
        elif r.outcome is None:
            r.outcome = "failed"
            r.error = (f"no outcome within {timeout:.0f}s: is a `casework worker` running for every stage? "
                       "The item is on the bus and will still be processed")
    return IngestReport(results=results, seconds=time.perf_counter() - started_clock, timed_out=timed_out)


# The file stage indexes what it filed at most this often, and the rest as the command ends (issue 15.10):
# items filed one at a time (scans) made one search-index commit each, ~12 ms of CPU and ~70 ms of the
# stage's time apiece. Below the outbox's LEFTOVER_AGE_S, so no other drainer takes these rows meanwhile.
INDEX_EVERY_S = 4.0
FIRST_READING_WAIT_S = 2.0  # the longest the later stages' loading waits for the extract stage to get going


def _wait_for_first_reading(runner: PipelineRunner) -> None:
    """Wait (at most FIRST_READING_WAIT_S) until the extract stage has a page in tesseract or has
    committed its first poll. Loading classify and file is Python work that holds the interpreter: done
    while the first pages are still being decoded and deskewed, it delayed them (issue 15.10); once they
    are in tesseract it runs beside them. Classify has nothing to do before extract hands items on."""
    deadline = time.monotonic() + FIRST_READING_WAIT_S
    while not (TESSERACT_STARTED.is_set() or runner.committed.is_set()) and runner.alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        runner.committed.wait(min(left, 0.02))


def _start_later_stages(rt: Runtime, runner: PipelineRunner, stages: Sequence[str]) -> None:
    """Load what classify and file need and start them beside the running extract stage."""
    with translate_errors():  # the case types are stored at start: a full disk says so
        parts = rt.pipeline_parts()
    parts.index_every_s = INDEX_EVERY_S
    runner.add(parts, stages)


def _stop_if_disk_full(rt: Runtime, runner: PipelineRunner | StageProcesses | None) -> None:
    """Stop taking work when a stage waits for disk space (issue 15.7): what is stored and
    published stays on the bus, and a re-run of the same command finishes it."""
    waiting = runner.disk_full() if runner is not None else []
    if waiting:
        raise DiskFull(str(rt.settings.data_dir), "; ".join(sorted(set(waiting)))[:500]
                       + "; stopped taking work")


CHUNK_FILES = 64
POLL_WINDOW = 500
CHUNK_BYTES = 64 << 20


def _chunks(files: Sequence[Path]) -> Iterator[list[tuple[Path, bytes | OSError]]]:
    """Files read in chunks of at most CHUNK_FILES files or CHUNK_BYTES bytes (a read error in place
    of the data of a file that could not be read)."""
    chunk: list[tuple[Path, bytes | OSError]] = []
    size = 0
    for path in files:
        try:
            data: bytes | OSError = path.read_bytes()
        except OSError as exc:
            data = exc
        chunk.append((path, data))
        size += len(data) if isinstance(data, bytes) else 0
        if len(chunk) >= CHUNK_FILES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _real_path(path: Path, folders: dict[str, str]) -> str:
    """``str(path.resolve())``, each folder resolved once (``folders``: the run's resolved folders):
    resolving walks every component of every file's path, a tenth of this command's CPU per file."""
    if path.is_symlink():
        return str(path.resolve())
    folder = os.fspath(path.parent)
    real = folders.get(folder)
    if real is None:
        real = folders[folder] = str(path.parent.resolve())
    return os.path.join(real, path.name)


def _publish_chunk(rt: Runtime, chunk: Sequence[tuple[Path, bytes | OSError]],
                   channel: Channel | None, seen: dict[str, bool],
                   folders: dict[str, str]) -> list[IngestResult]:
    """Store a chunk's files (one file-system sync), mark those filed before this run as
    duplicates, and publish the rest once (``seen``: what earlier chunks of the run published);
    a file that cannot be read or a bad channel is a failed result at once."""
    results: list[IngestResult] = []
    readable: list[tuple[IngestResult, Path, bytes, Channel]] = []
    for path, data in chunk:
        result = IngestResult(source=printable(str(path)))
        results.append(result)
        if isinstance(data, OSError):
            result.outcome, result.error = "failed", printable(f"cannot read {path}: {data.strerror or data}")
            continue
        item_channel = channel or infer_channel(path)
        try:
            check_channel(item_channel)
        except BadInput as exc:
            result.outcome, result.error = "failed", str(exc)
            continue
        readable.append((result, path, data, item_channel))
    refs = rt.blobs.put_many([data for _, _, data, _ in readable])
    raw_items: dict[str, RawItem] = {}
    for (result, path, data, item_channel), ref in zip(readable, refs, strict=True):
        raw = describe_raw_item(ref, data, channel=item_channel, filename=path.name, source=_real_path(path, folders))
        result.item_id = raw.item_id
        if raw.item_id not in seen:
            raw_items.setdefault(raw.item_id, raw)
    if raw_items:
        with rt.read_sessions() as session:
            before = item_service.outcomes(session, item_ids=sorted(raw_items))
        for item_id in raw_items:
            seen[item_id] = before.get(item_id, {}).get("outcome") in FILED_OUTCOMES
        publish_raw(rt.bus, [r for item_id, r in raw_items.items() if not seen[item_id]])
    for result in results:
        if result.item_id:
            result.duplicate = seen[result.item_id]
    return results
