"""`casework setup`, as the compose stack's init service runs it on every start: migrates, creates
the first admin with its password once, and leaves it alone afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import DbSettings, Settings
from api.setup_cli import PIPELINE_TOPICS
from api.wiring import open_runtime
from casestore.signin.passwords import check_password
from ingest.bus.kafka_bus import KafkaBus
from tests.kafka_broker import KAFKA_TEST_OPTS

CASEWORK = [sys.executable, "-m", "api"]


def setup(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CASEWORK, "setup", *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_setup_creates_the_first_admin_once(user_env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    weak = setup(user_env, "--admin", "root", "--password-stdin", stdin="root\n")
    assert weak.returncode != 0 and "password" in weak.stderr.lower(), weak
    first = setup(user_env, "--admin", "root", "--password-stdin", stdin="correct horse battery staple\n")
    assert first.returncode == 0, first.stderr
    assert "at schema" in first.stdout and "admin root created" in first.stdout
    again = setup(user_env, "--admin", "root", "--password-stdin", stdin="another long passphrase 42\n")
    assert again.returncode == 0, again.stderr
    assert "exists already" in again.stdout

    rt = open_runtime(Settings(data_dir=Path(user_env["CASEWORK_DATA_DIR"]),
                               db=DbSettings(url=user_env.get("CASEWORK_DB__URL", ""))))
    try:
        with rt.sessions() as session:
            user = check_password(session, name="root", password="correct horse battery staple")
            assert user is not None and user.role == "admin", "the first password stays; a re-run resets nothing"
            assert check_password(session, name="root", password="another long passphrase 42") is None
    finally:
        rt.close()


@pytest.mark.kafka
def test_setup_creates_the_pipeline_topics_on_kafka_with_the_configured_partitions(
        tmp_path: Path, fresh_kafka_broker: str) -> None:
    kafka_broker = fresh_kafka_broker  # the session's broker has these topics already, from other tests
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({"CASEWORK_DATA_DIR": str(tmp_path / "data"), "CASEWORK_BUS__URL": f"kafka://{kafka_broker}",
                "CASEWORK_BUS__PARTITIONS": "6"})
    done = setup(env)
    assert done.returncode == 0, done.stderr
    bus = KafkaBus(kafka_broker, client_id="setup-test", **KAFKA_TEST_OPTS)
    try:
        for topic in PIPELINE_TOPICS:
            assert sorted(bus.end_offsets(topic)) == list(range(6)), topic
    finally:
        bus.close()
