"""The production shape: the same code on Kafka (the Tansu broker) and PostgreSQL, stages in
`casework worker` processes that stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli_pipeline import CASES, CUSTOMERS, email, run, run_json

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def prod_env(tmp_path: Path, kafka_broker: str, fresh_pg_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({
        "CASEWORK_DATA_DIR": str(tmp_path / "shared-volume"),
        "CASEWORK_BUS__URL": f"kafka://{kafka_broker}",
        "CASEWORK_DB__URL": fresh_pg_url,
        "CASEWORK_BUS__SESSION_TIMEOUT_MS": "6000",
        "CASEWORK_BUS__HEARTBEAT_INTERVAL_MS": "2000",
    })
    return env


@pytest.fixture
def workers(prod_env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    for stage in ("extract", "classify", "file"):
        log = (tmp_path / f"worker-{stage}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "api", "worker", stage], env=prod_env,
                                      stdout=log, stderr=subprocess.STDOUT))
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_email_filed_once_through_kafka_workers_on_postgres(
    tmp_path: Path, prod_env: dict[str, str], workers: list[subprocess.Popen[bytes]]
) -> None:
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(prod_env, "import", "customers", str(tmp_path / "customers.csv"), check=False)
    run(prod_env, "import", "cases", str(tmp_path / "cases.csv"))
    mail = tmp_path / "reply.eml"
    mail.write_bytes(email("jane.doe@example.com", "CM-2025-004817", "Any news on my parcel?", "k1@example.com"))

    first = run_json(prod_env, "ingest", str(mail), "--json", "--timeout", "120")
    assert first["attached"] == 1, first
    second = run_json(prod_env, "ingest", str(mail), "--json", "--timeout", "120")
    assert second["results"][0]["duplicate"] is True
    folder = run_json(prod_env, "case", "show", "CM-2025-004817", "--json")
    assert len(folder["documents"]) == 1
    assert [a["action"] for a in folder["audit"]].count("item.filed") == 1

    for p in workers:
        p.send_signal(signal.SIGTERM)
    for p in workers:
        assert p.wait(timeout=40) == 0, (tmp_path / "worker-file.log").read_text()[-2000:]
