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
import signal
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent

from api.settings import Settings
from api.wiring import open_runtime
from ingest.pipeline import STAGES, PipelineRunner

log = logging.getLogger(__name__)


def _stage_main(settings_json: str, stage: str, stop: MpEvent, log_level: int) -> None:
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


class StageProcesses:
    """Start one child process per stage; ``close`` asks them to finish their batch and exit."""

    def __init__(self, settings: Settings, *, stages: Sequence[str] = STAGES) -> None:
        self.ctx = mp.get_context("spawn")
        self.stop = self.ctx.Event()
        self.settings_json = settings.model_dump_json()
        self.stages = list(stages)
        self.processes: dict[str, BaseProcess] = {}

    def start(self) -> None:
        level = logging.getLogger().getEffectiveLevel()
        for stage in self.stages:
            p = self.ctx.Process(target=_stage_main, args=(self.settings_json, stage, self.stop, level),
                                 name=f"casework-{stage}", daemon=True)
            p.start()
            self.processes[stage] = p
        log.info("pipeline stages started as processes: %s",
                 ", ".join(f"{s}={p.pid}" for s, p in self.processes.items()))

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
