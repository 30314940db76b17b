"""Issue 13, scale-out that holds: several `casework worker` processes per stage in one consumer
group on Kafka (the Tansu test broker) and PostgreSQL. While a run is in flight, one file worker
and one extract worker are killed with SIGKILL (no clean leave: their polled, uncommitted
batches wait out the session timeout and go to the others), and a new file worker joins (a
rebalance). Afterwards every item is filed exactly once: one `item.filed` audit event and one
document each, and no case opened twice.

The kill lands while the stages have a backlog (file batches of 5 behind a run of 60 emails), so
the killed file worker is inside a poll-handle-commit cycle at the time; which step of it is not
pinned (the crash suite of issue 15 injects faults at each boundary)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.test_cli_pipeline import CASES, CUSTOMERS, email, run
from tests.filed_once import assert_filed_once

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CASEWORK = [sys.executable, "-m", "api"]
ITEMS = 60


@pytest.fixture
def scale_env(tmp_path: Path, fresh_kafka_broker: str, fresh_pg_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({
        "CASEWORK_DATA_DIR": str(tmp_path / "shared-volume"),
        "CASEWORK_BUS__URL": f"kafka://{fresh_kafka_broker}",
        "CASEWORK_BUS__PARTITIONS": "4",
        "CASEWORK_DB__URL": fresh_pg_url,
        "CASEWORK_BUS__SESSION_TIMEOUT_MS": "6000",
        "CASEWORK_BUS__HEARTBEAT_INTERVAL_MS": "2000",
        "CASEWORK_WORKER__BATCH_SIZE": "20",
        "CASEWORK_WORKER__EXTRACT_BATCH_SIZE": "10",
        "CASEWORK_WORKER__FILE_BATCH_SIZE": "5",
        "OMP_THREAD_LIMIT": "1",
    })
    return env


class Workers:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, stage: str) -> subprocess.Popen[bytes]:
        n = sum(1 for s, _ in self.procs if s == stage)
        with (self.logs / f"worker-{stage}-{n}.log").open("wb") as log:
            proc = subprocess.Popen([*CASEWORK, "worker", stage], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((stage, proc))
        return proc

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.logs.glob("worker-*.log")))


@pytest.fixture
def workers(scale_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(scale_env, tmp_path)
    yield ws
    for _, p in ws.procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def filed_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM items")).scalar_one())
    finally:
        engine.dispose()


def test_killed_and_added_workers_file_every_item_exactly_once(
        tmp_path: Path, scale_env: dict[str, str], workers: Workers) -> None:
    for stage in ("extract", "extract", "classify", "file", "file"):  # they start while the imports run
        workers.start(stage)
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(scale_env, "import", "customers", str(tmp_path / "customers.csv"), check=False)
    run(scale_env, "import", "cases", str(tmp_path / "cases.csv"))
    mail = tmp_path / "mail"
    mail.mkdir()
    for n in range(ITEMS):  # a third quote the case, the rest come from strangers (new cases or triage)
        sender, subject = (("jane.doe@example.com", "CM-2025-004817") if n % 3 == 0
                           else (f"stranger{n}@example.net", f"Question number {n}"))
        (mail / f"m{n:03}.eml").write_bytes(email(sender, subject, f"Message {n} about my order.", f"s{n}@x"))

    out, err = tmp_path / "ingest.json", tmp_path / "ingest.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        ingest = subprocess.Popen([*CASEWORK, "ingest", str(mail), "--json", "--timeout", "240"],
                                  env=scale_env, stdout=stdout, stderr=stderr)

    url = scale_env["CASEWORK_DB__URL"]
    deadline = time.monotonic() + 180
    while (filed := filed_count(url)) < 10 and time.monotonic() < deadline and ingest.poll() is None:
        time.sleep(0.2)
    assert 10 <= filed < ITEMS, f"{filed} filed before the kill: the run was not in flight\n{workers.tail()}"
    file_worker = next(p for s, p in workers.procs if s == "file")
    extract_worker = next(p for s, p in workers.procs if s == "extract")
    file_worker.send_signal(signal.SIGKILL)
    extract_worker.send_signal(signal.SIGKILL)
    workers.start("file")  # joins while the killed member's partitions are still held for it

    assert ingest.wait(timeout=240) == 0, f"{err.read_text()[-2000:]}\n{workers.tail()}"
    report = json.loads(out.read_text())
    assert report["failed"] == 0 and len(report["results"]) == ITEMS, report
    assert report["attached"] == ITEMS // 3, report

    engine = create_engine(url)
    try:
        ids = {r["item_id"] for r in report["results"]}
        assert len(ids) == ITEMS, report
        assert_filed_once(engine, ids, only=True)  # one body each
        with engine.connect() as conn:
            new_cases = conn.execute(text("SELECT count(*) FROM items WHERE outcome = 'new_case'")).scalar_one()
            cases = conn.execute(text("SELECT count(*) FROM cases")).scalar_one()
    finally:
        engine.dispose()
    assert cases == 2 + new_cases  # the two imported; no new case opened twice for one item
    assert report["new_case"] == new_cases

    for _stage, p in workers.procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for stage, p in workers.procs:
        code = p.wait(timeout=60)
        assert code in (0, -signal.SIGKILL), f"worker {stage} exited {code}\n{workers.tail()}"
