"""Issue 15's crash suite: kill -9 at each stage boundary, and SIGTERM to the process group, on the
embedded default (SQLite store, SQLite log, Tantivy) and on Kafka (Tansu) + PostgreSQL.

The process at the boundary kills itself with SIGKILL through the fault hook (``ingest.faults``,
``CASEWORK_FAULT=POINT:N``), so the moment is exact.  Afterwards, as an operator would, the same
command runs again (embedded) or the dead worker is restarted (Kafka), and every item must be
filed exactly once: one item row, one document, one ``item.filed`` audit event each, nothing
failed, and no process of the crashed run left behind.  Completion is bounded generously (the
re-run finishes within its own --timeout); the recovery times are figures for BENCHMARKS.md
("Issue 15 crash suite"), written as JSON lines to ``$CASEWORK_CRASH_FIGURES`` when that is set,
never asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from benchmarks.pipeline_throughput import make_emails
from tests.e2e.test_serve_signals import wait_empty
from tests.filed_once import assert_filed_once
from tests.kafka_broker import running_broker

CASEWORK = [sys.executable, "-m", "api"]
ITEMS = 40
STAGES = ("extract", "classify", "file")
FILED = ("attached", "new_case", "triage", "noise")


def record_figure(**figure: Any) -> None:
    path = os.environ.get("CASEWORK_CRASH_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(figure) + "\n")


def ingest(env: dict[str, str], folder: Path, *, fault: str | None = None, timeout: int = 120,
           **popen: Any) -> subprocess.Popen[str]:
    env = {**env, "CASEWORK_FAULT": fault} if fault else env
    return subprocess.Popen([*CASEWORK, "ingest", str(folder), "--json", "--timeout", str(timeout)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"`casework ingest` did not finish within {timeout:.0f} s:\n{err[-3000:]}") from None
    return proc.returncode, out, err


def assert_report_filed_once(engine: Engine, report: dict[str, Any], *, only: bool = False) -> None:
    """Every file of the run filed, each item once with one document and one filing event (``only``:
    and nothing else in the store)."""
    assert report["failed"] == 0, [r for r in report["results"] if r["outcome"] not in FILED][:3]
    assert sum(report[k] for k in FILED) == ITEMS
    ids = {r["item_id"] for r in report["results"]}
    assert len(ids) == ITEMS
    assert_filed_once(engine, ids, only=only)


def emails(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    make_emails(folder, ITEMS, run_id=f"{name}-{os.getpid()}-{time.time_ns()}")
    return folder


# -- the embedded default: `casework ingest` runs every stage in its own process ------------------

EMBEDDED_FAULTS = [
    "after_blob_write:1",  # stored, nothing published
    "after_publish:2",  # a stage's second batch is on the bus, its input offsets not committed
    "mid_extract:15",  # the 15th item read; its output neither published nor committed
    "mid_file:1",  # the first filing transaction written, not committed
    "after_file_commit:1",  # the first filing committed; offsets not, search not updated
]


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env["CASEWORK_DATA_DIR"] = str(tmp_path / "data")
    env["CASEWORK_WORKER__STAGE_PROCESSES"] = "threads"  # the stages live and die with `casework ingest`
    return env


def _rerun_embedded(env: dict[str, str], folder: Path, crashed_pid: int, case: str) -> None:
    left = wait_empty(crashed_pid, 10)
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes of the crashed run left behind: {left}"
    started = time.perf_counter()
    code, out, err = finish(ingest(env, folder))
    seconds = time.perf_counter() - started
    assert code == 0, err[-3000:]
    engine = create_engine(f"sqlite:///{env['CASEWORK_DATA_DIR']}/casework.db")
    try:
        assert_report_filed_once(engine, json.loads(out), only=True)
    finally:
        engine.dispose()
    record_figure(shape="embedded", case=case, items=ITEMS, recovery_s=round(seconds, 1))


@pytest.mark.parametrize("fault", EMBEDDED_FAULTS)
def test_embedded_kill_9_at_a_stage_boundary_then_rerun_files_each_item_once(
    tmp_path: Path, embedded_env: dict[str, str], fault: str
) -> None:
    folder = emails(tmp_path, "mail")
    victim = ingest(embedded_env, folder, fault=fault)
    code, _, err = finish(victim)
    assert code == -signal.SIGKILL, f"the fault {fault} was not reached (exit {code}):\n{err[-2000:]}"
    _rerun_embedded(embedded_env, folder, victim.pid, fault)


def test_embedded_sigterm_to_the_process_group_then_rerun_files_each_item_once(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    folder = emails(tmp_path, "mail")
    db = Path(embedded_env["CASEWORK_DATA_DIR"]) / "casework.db"
    victim = ingest(embedded_env, folder)
    deadline = time.monotonic() + 120
    while victim.poll() is None and time.monotonic() < deadline and not (db.exists() and _filed_sqlite(db) > 0):
        time.sleep(0.05)
    if victim.poll() is None:
        os.killpg(victim.pid, signal.SIGTERM)
    code, _, err = finish(victim)
    assert code != 0 or _filed_sqlite(db) == ITEMS, err[-2000:]
    _rerun_embedded(embedded_env, folder, victim.pid, "SIGTERM to the group")


def _filed_sqlite(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return 0


# -- production shape: `casework worker STAGE` processes on Kafka (Tansu) and PostgreSQL ----------

@dataclass
class Production:
    env: dict[str, str]
    logs: Path
    engine: Engine
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pgid: int = 0
    blobs_before: int = 0
    _log_at: dict[str, int] = field(default_factory=dict)  # where each worker's latest start begins in its log

    def start(self, stage: str, fault: str | None = None, *, ready: bool = True) -> subprocess.Popen[bytes]:
        """Start ``casework worker STAGE``; with ``ready``, return once it holds its partitions."""
        env = {**self.env, "CASEWORK_FAULT": fault} if fault else self.env
        log_path = self.logs / f"worker-{stage}.log"
        seen = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            # One process group for the three, as a supervisor's unit would have.
            group: dict[str, Any] = {"process_group": self.pgid or 0}
            proc = subprocess.Popen([*CASEWORK, "worker", stage], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    **group)
        if not self.pgid:
            self.pgid = proc.pid
        self.workers[stage] = proc
        self._log_at[stage] = seen
        if ready:
            self.wait_ready(stage)
        return proc

    def wait_ready(self, *stages: str) -> None:
        """Wait until each worker's latest start has its partitions assigned.  Before that its
        SIGTERM handler may not be set, and a member that leaves while its group is still forming
        has left Tansu's group rebalancing for good ("SyncGroup ... failed due to coordinator
        rebalance" every 8 s, nothing consumed: seen once in this suite)."""
        deadline = time.monotonic() + 90
        waiting = set(stages)
        while waiting and time.monotonic() < deadline:
            for stage in list(waiting):
                with (self.logs / f"worker-{stage}.log").open("rb") as f:
                    f.seek(self._log_at[stage])
                    if b"newly assigned partitions" in f.read() or self.workers[stage].poll() is not None:
                        waiting.discard(stage)
            time.sleep(0.1)

    def stop_all(self) -> None:
        for p in self.workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.workers.values():
            try:
                p.wait(40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, _postgres: Any) -> Iterator[Production]:
    scratch = tmp_path_factory.mktemp("crash-kafka")
    url: str = _postgres.create()
    with running_broker(scratch) as broker:  # a broker of its own: no other test's records in its groups
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
        env.update({
            "CASEWORK_DATA_DIR": str(scratch / "shared-volume"),
            "CASEWORK_BUS__URL": f"kafka://{broker}",
            "CASEWORK_DB__URL": url,
            "CASEWORK_BUS__SESSION_TIMEOUT_MS": "6000",
            "CASEWORK_BUS__HEARTBEAT_INTERVAL_MS": "2000",
        })
        engine = create_engine(url)
        prod = Production(env=env, logs=scratch, engine=engine)
        # Migrate once before the workers start (as `casework setup` or the first command would).
        subprocess.run([*CASEWORK, "user", "list"], env=env, capture_output=True, timeout=120, check=False)
        try:
            for stage in STAGES:
                prod.start(stage, ready=False)
            prod.wait_ready(*STAGES)
            yield prod
        finally:
            prod.stop_all()
            left = wait_empty(prod.pgid, 10) if prod.pgid else []
            for pid, _ in left:
                os.kill(pid, signal.SIGKILL)
            engine.dispose()
    _postgres.drop(url)


def wait_caught_up(prod: Production, timeout: float = 60) -> None:
    """Wait until every stage's group has committed all its input: a batch redelivered after the
    crash (filed before it, uncommitted) has been handled again, so a second filing would show."""
    from ingest.bus.kafka_bus import KafkaBus
    from ingest.bus.lag import group_lag
    from ingest.messages import TOPIC_CLASSIFIED, TOPIC_EXTRACTED, TOPIC_RAW

    bus = KafkaBus(prod.env["CASEWORK_BUS__URL"].removeprefix("kafka://"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            behind = {stage: group_lag(bus, group=f"casework.{stage}", topic=topic).lag for stage, topic in
                      zip(STAGES, (TOPIC_RAW, TOPIC_EXTRACTED, TOPIC_CLASSIFIED), strict=True)}
            if not any(behind.values()):
                return
            assert time.monotonic() < deadline, f"stages still behind after {timeout:.0f} s: {behind}"
            time.sleep(0.5)
    finally:
        bus.close()


def _worker_log(prod: Production, stage: str) -> str:
    return (prod.logs / f"worker-{stage}.log").read_text(errors="replace")[-2000:]


KAFKA_WORKER_FAULTS = [
    ("extract", "mid_extract:10"),
    ("classify", "after_publish:1"),  # extract's publish boundary is the same code (ingest.worker)
    ("file", "mid_file:1"),
    ("file", "after_file_commit:1"),
]


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.parametrize(("stage", "fault"), KAFKA_WORKER_FAULTS)
def test_kafka_kill_9_of_a_worker_at_a_boundary_then_restart_files_each_item_once(
    tmp_path: Path, production: Production, stage: str, fault: str
) -> None:
    prod = production
    prod.wait_ready(*STAGES)  # the last test's restarted workers have joined
    old = prod.workers[stage]
    old.send_signal(signal.SIGTERM)  # replaced by the same worker with the fault armed
    assert old.wait(40) == 0, _worker_log(prod, stage)
    victim = prod.start(stage, fault=fault)
    assert victim.poll() is None, _worker_log(prod, stage)
    folder = emails(tmp_path, "mail")
    run = ingest(prod.env, folder)
    try:
        victim.wait(120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{stage} worker never reached {fault}:\n{_worker_log(prod, stage)}") from None
    died = time.perf_counter()
    assert victim.returncode == -signal.SIGKILL, _worker_log(prod, stage)
    prod.start(stage, ready=False)  # the supervisor restarts it
    code, out, err = finish(run)
    seconds = time.perf_counter() - died
    assert code == 0, err[-3000:] + _worker_log(prod, stage)
    wait_caught_up(prod)
    assert_report_filed_once(prod.engine, json.loads(out))
    record_figure(shape="kafka+postgres", case=f"{stage} {fault}", items=ITEMS, recovery_s=round(seconds, 1))


@pytest.mark.kafka
@pytest.mark.postgres
def test_kafka_kill_9_of_ingest_after_the_blob_write_then_rerun_files_each_item_once(
    tmp_path: Path, production: Production
) -> None:
    production.wait_ready(*STAGES)
    folder = emails(tmp_path, "mail")
    victim = ingest(production.env, folder, fault="after_blob_write:1")
    code, _, err = finish(victim)
    assert code == -signal.SIGKILL, err[-2000:]
    started = time.perf_counter()
    code, out, err = finish(ingest(production.env, folder))
    assert code == 0, err[-3000:]
    assert_report_filed_once(production.engine, json.loads(out))
    record_figure(shape="kafka+postgres", case="ingest after_blob_write:1", items=ITEMS,
                  recovery_s=round(time.perf_counter() - started, 1))


@pytest.mark.kafka
@pytest.mark.postgres
def test_kafka_sigterm_to_the_workers_group_then_restart_files_each_item_once(
    tmp_path: Path, production: Production
) -> None:
    prod = production
    prod.wait_ready(*STAGES)
    folder = emails(tmp_path, "mail")
    blobs = Path(prod.env["CASEWORK_DATA_DIR"]) / "blobs"
    prod.blobs_before = sum(1 for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else 0
    run = ingest(prod.env, folder)
    deadline = time.monotonic() + 120
    while run.poll() is None and time.monotonic() < deadline and not _published(prod):
        time.sleep(0.05)
    time.sleep(0.5)  # the stages are at work on the first batch
    os.killpg(prod.pgid, signal.SIGTERM)
    for stage, p in prod.workers.items():
        assert p.wait(40) == 0, _worker_log(prod, stage)  # each finishes or returns its batch
    assert wait_empty(prod.pgid, 10) == []
    stopped = time.perf_counter()
    prod.pgid = 0
    for stage in STAGES:
        prod.start(stage, ready=False)
    code, out, err = finish(run)
    assert code == 0, err[-3000:]
    assert_report_filed_once(prod.engine, json.loads(out))
    record_figure(shape="kafka+postgres", case="SIGTERM to the workers' group", items=ITEMS,
                  recovery_s=round(time.perf_counter() - stopped, 1))


def _published(prod: Production) -> bool:
    """Whether `casework ingest` has stored its items' blobs (it publishes them right after)."""
    blobs = Path(prod.env["CASEWORK_DATA_DIR"]) / "blobs"
    return blobs.exists() and sum(1 for p in blobs.rglob("*") if p.is_file()) >= prod.blobs_before + ITEMS
