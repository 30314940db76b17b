"""Every pipeline stage in its own child process, on the embedded bus: the same stages as
``ingest.pipeline.PipelineRunner`` runs in threads, but using every core.

The stages already talk only through the bus (a SQLite log that several processes share) and
the store, so a child needs nothing from the parent but the settings. Children ignore SIGINT
(the parent decides when to stop) and leave their consumer groups cleanly when told to stop,
so nothing is lost: what a child polled but did not commit is delivered again.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import resource
import signal
from collections.abc import Sequence
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

from api.settings import Settings
from api.wiring import open_runtime
from ingest.pipeline import STAGES, PipelineRunner

log = logging.getLogger(__name__)


def _stage_main(settings_json: str, stage: str, stop: MpEvent, log_level: int, cpu: Any, slot: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s [{stage}] %(name)s: %(message)s")
    settings = Settings.model_validate_json(settings_json)
    rt = open_runtime(settings, migrate=False)
    runner = PipelineRunner(rt.pipeline_parts(with_search=stage == "file"), stages=[stage])
    runner.start()
    try:
        while not stop.wait(0.2):
            if not runner.alive():
                raise SystemExit(f"stage {stage} stopped: {runner.errors[-1] if runner.errors else 'unknown'}")
    finally:
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

    def __init__(self, settings: Settings, *, stages: Sequence[str] = STAGES) -> None:
        self.ctx = _context()
        self.stop = self.ctx.Event()
        # absolute: a forkserver keeps the working directory it started in, which may not be ours now
        self.settings_json = settings.model_copy(update={"data_dir": settings.data_dir.resolve()}).model_dump_json()
        self.stages = list(stages)
        self.processes: dict[str, BaseProcess] = {}
        self._cpu = self.ctx.Array("d", len(self.stages), lock=False)  # CPU seconds, filled in as each stops

    def start(self) -> None:
        level = logging.getLogger().getEffectiveLevel()
        for slot, stage in enumerate(self.stages):
            p = self.ctx.Process(target=_stage_main, name=f"casework-{stage}", daemon=True,
                                 args=(self.settings_json, stage, self.stop, level, self._cpu, slot))
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

    def states(self) -> dict[str, str]:
        return {s: ("running" if p.is_alive() else f"stopped (exit {p.exitcode})") for s, p in self.processes.items()}

    @property
    def errors(self) -> list[str]:
        return [f"stage {s} exited with {p.exitcode}" for s, p in self.processes.items()
                if not p.is_alive() and p.exitcode not in (0, None)]

    def close(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for stage, p in self.processes.items():
            p.join(timeout)
            if p.is_alive():
                log.warning("stage process %s did not stop within %.0fs; terminating it", stage, timeout)
                p.terminate()
                p.join(5)
