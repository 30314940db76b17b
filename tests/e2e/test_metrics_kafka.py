"""Metrics on the production shape (Kafka through the Tansu test broker, PostgreSQL): each
`casework worker STAGE` shows its stage's series on its scrape listener, and the API's /metrics
reads every stage's consumer lag and committed records from Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.wiring import open_runtime
from casestore import users
from tests.connectors.conftest import free_port
from tests.e2e.test_cli_pipeline import email, run_json
from tests.e2e.test_metrics import parse, value

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
STAGES = {"extract": "intake.raw", "classify": "intake.extracted", "file": "intake.classified"}


def test_workers_and_the_api_show_stage_series_and_kafka_lag(tmp_path: Path, kafka_broker: str,
                                                             fresh_pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({"CASEWORK_DATA_DIR": str(tmp_path / "shared-volume"), "CASEWORK_BUS__URL": f"kafka://{kafka_broker}",
                "CASEWORK_DB__URL": fresh_pg_url, "CASEWORK_BUS__SESSION_TIMEOUT_MS": "6000",
                "CASEWORK_BUS__HEARTBEAT_INTERVAL_MS": "2000"})
    ports = {stage: free_port() for stage in STAGES}
    workers = []
    for stage in STAGES:
        log = (tmp_path / f"worker-{stage}.log").open("wb")
        workers.append(subprocess.Popen([sys.executable, "-m", "api", "worker", stage],
                                        env={**env, "CASEWORK_METRICS__PORT": str(ports[stage])},
                                        stdout=log, stderr=subprocess.STDOUT))
    try:
        inbox = tmp_path / "in"
        inbox.mkdir()
        for n in range(2):
            (inbox / f"{n}.eml").write_bytes(email(f"k{n}@example.net", f"Question {n}", "When?", f"km{n}@x"))
        report = run_json(env, "ingest", str(inbox), "--json", "--timeout", "120")
        assert report["new_case"] == 2, report

        for stage, port in ports.items():
            samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            assert value(samples, "casework_stage_items_total", stage=stage) == 2, stage
            assert (value(samples, "casework_stage_batch_duration_seconds_count", stage=stage) or 0) >= 1
            others = {labels for name, labels in samples if name == "casework_stage_items_total"}
            assert others == {(("stage", stage),)}, "a worker shows its own stage only"

        rt = open_runtime(Settings(data_dir=tmp_path / "api", bus={  # type: ignore[arg-type]
            "url": f"kafka://{kafka_broker}", "session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
            db={"url": fresh_pg_url}))
        try:
            with rt.sessions() as s, s.begin():
                users.add_user(s, name="ops", role="admin")
                auth = {"Authorization": f"Bearer {users.create_token(s, name='ops')}"}
            client = TestClient(create_app(rt))
            deadline = time.monotonic() + 60
            while True:  # the file stage commits its offsets just after its store transaction
                samples = parse(client.get("/metrics", headers=auth).text)
                lags = {s: value(samples, "casework_consumer_lag", stage=s, group=f"casework.{s}", topic=t)
                        for s, t in STAGES.items()}
                if set(lags.values()) == {0} or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert lags == dict.fromkeys(STAGES, 0)
            for stage, topic in STAGES.items():
                # the broker is shared by the session's Kafka tests: earlier tests' records count too
                assert (value(samples, "casework_consumer_committed_records_total", stage=stage,
                              group=f"casework.{stage}", topic=topic) or 0) >= 2
            assert value(samples, "casework_dead_letters_total") == 0
            assert value(samples, "casework_metrics_source_up", source="bus") == 1
        finally:
            rt.close()
    finally:
        for p in workers:
            p.send_signal(signal.SIGTERM)
        for p in workers:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
