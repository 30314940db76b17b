"""Every pipeline stage in its own child process, on the embedded bus: the same stages as
``ingest.pipeline.PipelineRunner`` runs in threads, but using every core.

The stages already talk only through the bus (a SQLite log that several processes share) and
the store, so a child needs nothing from the parent but the settings. Children ignore SIGINT
(the parent decides when to stop) and leave their consumer groups cleanly when told to stop,
so nothing is lost: what a child polled but did not commit is delivered again.

Stopping: the parent raises a shared flag (not a ``multiprocessing.Event``: setting an Event
waits for every process that ever waited on it, so a child killed mid-wait, as SIGTERM to the
whole process group does, made ``serve`` hang for good).  A child also stops, finishing its
batch, on SIGTERM, and when the process that started it (``serve`` or ``ingest``: the owner) is
gone, so a ``kill -9`` of ``casework serve`` leaves no stage process behind to file items beside
the restarted server's.  The owner is not the child's parent: the forkserver is, and it lives as
long as any child does (each child holds the forkserver's liveness pipe), so the child watches
the owner's pid and start time (a zombie or a reused pid counts as gone); where the forkserver
is not used, the kernel's parent-death signal (``PR_SET_PDEATHSIG``) covers it too.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import resource
import signal
import threading
from collections.abc import Sequence
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from api.config_watch import start_watch
from api.log_setup import configure_logging
from api.metrics import child_metrics_dir, forget_child_metrics_dir
from api.settings import Settings
from api.wiring import open_runtime
from casestore.db import translate_errors
from ingest.heap import settled
from ingest.log_context import stage_var
from ingest.pipeline import STAGES, PipelineRunner
from ingest.procs import process_start_time
from ingest.stage_metrics import record_in_directory

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the process that forked us dies (elsewhere: the ppid watch only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError):
        log.debug("no prctl here; the stage watches its parent id instead")


def _stage_main(settings: Settings, stage: str, stop: Any, log_level: int, cpu: Any, slot: int,
                owner: int, metrics_dir: Path, paused: Any, pause_log_level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    record_in_directory(metrics_dir)  # before the stage's series exist: the parent's /metrics reads them
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    _die_with_parent()
    if settings.worker.stage_nice:  # before any thread starts: Linux threads inherit it (issue 15.12)
        os.nice(settings.worker.stage_nice)
    owner_started = process_start_time(owner)
    if owner_started is None:  # the owner died while we started
        return
    configure_logging(level=log_level, fmt=settings.log.format)
    stage_var.set(stage)  # this process's lines are all about its stage
    rt = open_runtime(settings, migrate=False)
    parts = None
    while parts is None:  # the file stage stores its case types at start: a full disk is waited out
        try:
            with translate_errors():
                parts = rt.pipeline_parts(with_search=stage == "file")
        except Exception as exc:
            if not getattr(exc, "disk_full", False):
                raise
            paused[slot] = 1
            log.log(pause_log_level, "stage %s paused at start: %s", stage, exc)
            if stopping.wait(5.0) or stop.value:
                rt.close()
                return
    runner = PipelineRunner(parts, stages=[stage], pause_log_level=pause_log_level)
    settled()  # as a `casework worker`: the stage's start-up objects are left out of every collection
    runner.start()
    watch = start_watch(rt) if stage == "file" else None  # the file stage starts cases: new types, calendars
    try:
        while not stopping.wait(0.2):
            paused[slot] = 1 if runner.disk_full() else 0
            if stop.value:
                break
            if process_start_time(owner) != owner_started:
                log.warning("stage %s: process %d that started it is gone; finishing the batch and stopping",
                            stage, owner)
                break
            if not runner.alive():
                raise SystemExit(f"stage {stage} stopped: {runner.errors[-1] if runner.errors else 'unknown'}")
    finally:
        if watch is not None:
            watch.close()
        runner.close()
        rt.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu[slot] = usage.ru_utime + usage.ru_stime  # a forkserver's child is not ours to wait for


def _context() -> ForkServerContext | SpawnContext:
    """forkserver where there is one (Linux): the server imports the pipeline once and forks each
    stage from it, so a stage starts in ~0.1 s of CPU instead of re-importing everything (~1 s
    each, which a `casework ingest` of a few thousand files felt).  The server holds no database
    connection or thread to inherit.  Elsewhere spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["api.stage_processes"])
        return ctx
    return mp.get_context("spawn")


class StageProcesses:
    """Start one child process per stage; ``close`` asks them to finish their batch and exit."""

    def __init__(self, settings: Settings, *, stages: Sequence[str] = STAGES,
                 pause_log_level: int = logging.WARNING) -> None:
        self.ctx = _context()
        self.stop = self.ctx.Value("b", 0, lock=False)  # a flag, not an Event: see the module docstring
        # absolute: a forkserver keeps the working directory it started in, which may not be ours now.
        # The object itself goes to the child (pickled), not its JSON: JSON masks secrets such as PDF
        # passwords as "**********", and a child would then not open an encrypted PDF (issue 15.8).
        self.settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
        self.stages = list(stages)
        self.processes: dict[str, BaseProcess] = {}
        self._cpu = self.ctx.Array("d", len(self.stages), lock=False)  # CPU seconds, filled in as each stops
        self._paused = self.ctx.Array("b", len(self.stages), lock=False)  # 1 while a stage waits for disk space
        self.pause_log_level = pause_log_level
        self.metrics_dir = child_metrics_dir()  # the children's Prometheus series (api/metrics.py)

    def start(self) -> None:
        level = logging.getLogger().getEffectiveLevel()
        for slot, stage in enumerate(self.stages):
            p = self.ctx.Process(target=_stage_main, name=f"casework-{stage}", daemon=True,
                                 args=(self.settings, stage, self.stop, level, self._cpu, slot, os.getpid(),
                                       self.metrics_dir, self._paused, self.pause_log_level))
            p.start()
            self.processes[stage] = p
        log.info("pipeline stages started as processes: %s",
                 ", ".join(f"{s}={p.pid}" for s, p in self.processes.items()))

    def cpu_seconds(self) -> dict[str, float]:
        """Each stopped stage's CPU seconds (user + system), as the stage measured itself."""
        return {stage: float(self._cpu[slot]) for slot, stage in enumerate(self.stages)
                if stage in self.processes and not self.processes[stage].is_alive()}

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.processes.values())

    def disk_full(self) -> list[str]:
        """The stages that wait for disk space (each child logs why, at ``pause_log_level``)."""
        return [f"stage {stage} cannot write" for slot, stage in enumerate(self.stages)
                if stage in self.processes and self._paused[slot]]

    def states(self) -> dict[str, str]:
        return {s: ("running" if p.is_alive() else f"stopped (exit {p.exitcode})")
                + (" (paused: disk full)" if p.is_alive() and self._paused[slot] else "")
                for slot, (s, p) in enumerate(self.processes.items())}

    @property
    def errors(self) -> list[str]:
        return [f"stage {s} exited with {p.exitcode}" for s, p in self.processes.items()
                if not p.is_alive() and p.exitcode not in (0, None)]

    def close(self, timeout: float = 30.0) -> None:
        self.stop.value = 1
        for stage, p in self.processes.items():
            p.join(timeout)
            if p.is_alive():
                log.warning("stage process %s did not stop within %.0fs; terminating it", stage, timeout)
                p.terminate()
                p.join(5)
        forget_child_metrics_dir(self.metrics_dir)
