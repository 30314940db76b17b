"""A fixture for every test package: a real S3 endpoint on loopback (``moto_server`` from PyPI
``moto[server]``, a test stand-in like the Tansu broker and osmem).

``s3_server`` starts one server per test session on a free loopback port and yields its URL;
``s3_bucket`` creates a fresh, empty bucket per test (moto keeps its state in memory only).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_broker import _accepts, _free_port  # one loopback-port helper for every test server

S3_TEST_KEYS = {"access_key_id": "casework-test", "secret_access_key": "casework-test-secret", "region": "us-east-1"}


def _moto_server() -> str:
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if found is None:
        pytest.fail("moto_server is not installed: pip install -e '.[dev]' (moto[server])", pytrace=False)
    return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port; yield ``http://127.0.0.1:PORT``; stop it at the end."""
    binary = _moto_server()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    for _attempt in range(3):
        port = _free_port()
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log_file,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not _accepts(port):
            time.sleep(0.05)
        if proc.poll() is None and _accepts(port):
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    pytest.fail(f"moto_server did not start; its output is in {log_path}:\n{log_path.read_text()[-2000:]}")


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new empty bucket on the test S3 server (its name)."""
    import boto3

    name = f"casework-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name=S3_TEST_KEYS["region"],
                          aws_access_key_id=S3_TEST_KEYS["access_key_id"],
                          aws_secret_access_key=S3_TEST_KEYS["secret_access_key"])
    client.create_bucket(Bucket=name)
    return name
