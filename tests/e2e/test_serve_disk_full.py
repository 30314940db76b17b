"""Issue 15.7 for a start on a full disk: `casework serve` started with its data directory on a full
file system starts (it does not exit with a traceback), says "disk full at PATH" once, answers 503
with that message, takes no work, and starts taking work by itself when space returns.

A real small file system (tmpfs, mounted here as root; skipped with the reason where mounting is
not permitted), the real CLI, a file dropped in the drop folder once space is back.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.connectors.conftest import free_port
from tests.small_fs import fill, small_fs  # noqa: F401 - the fixture

CASEWORK = [sys.executable, "-m", "api"]
MAIL = (b"From: Jane Doe <jane@example.net>\r\nTo: cases@example.org\r\nSubject: my parcel\r\n"
        b"Message-ID: <after-space@example.net>\r\n\r\nHello, where is my parcel?\r\n")


def _health(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx.HTTPError:
        return None


def _wait(predicate: object, what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout:.0f} s; serve's log:\n" + log.read_text(errors="replace")[-3000:])


def _items(data: Path) -> int:
    with sqlite3.connect(data / "casework.db") as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def test_serve_started_on_a_full_disk_waits_for_space_then_takes_work(tmp_path: Path,
                                                                       small_fs: Path) -> None:  # noqa: F811
    data = small_fs / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update(CASEWORK_DATA_DIR=str(data), CASEWORK_WORKER__STAGE_PROCESSES="threads")
    subprocess.run([*CASEWORK, "user", "add", "sue", "--role", "supervisor"], env=env, check=True,
                   capture_output=True, timeout=120)  # a data directory in use: its store exists
    filler = fill(small_fs, 0)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*CASEWORK, "serve", "--port", str(port)], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def waiting() -> bool:
            got = _health(port)
            return got is not None and got.status_code == 503

        _wait(waiting, "serve answering 503 on a full disk", log)
        got = _health(port)
        assert got is not None and got.json()["status"].startswith(f"disk full at {data}")
        assert got.headers["retry-after"]
        time.sleep(5)  # a few checks go by: no second message, no exit, no work
        assert server.poll() is None, log.read_text(errors="replace")[-3000:]
        assert log.read_text(errors="replace").count("disk full at") == 1

        filler.unlink()  # space returns: serve starts taking work by itself

        def serving() -> bool:
            got = _health(port)
            return got is not None and got.status_code == 200 and got.json()["status"] in ("ok", "degraded")

        _wait(serving, "serve taking work once space returned", log)
        (data / "drop" / "parcel.eml").write_bytes(MAIL)
        _wait(lambda: _items(data) == 1, "the dropped mail filed", log)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    text = log.read_text(errors="replace")
    assert text.count("disk full at") == 1 and "Traceback" not in text
    assert "casework serve starts taking work" in text


def test_sigterm_while_waiting_for_space_ends_serve_cleanly(tmp_path: Path, small_fs: Path) -> None:  # noqa: F811
    data = small_fs / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update(CASEWORK_DATA_DIR=str(data), CASEWORK_WORKER__STAGE_PROCESSES="threads")
    fill(small_fs, 0)  # not even the data directory can be made
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*CASEWORK, "serve", "--port", str(port)], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: (got := _health(port)) is not None and got.status_code == 503, "serve answering 503", log)
        os.killpg(server.pid, signal.SIGTERM)  # to the group, as a supervisor sends it
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    text = log.read_text(errors="replace")
    assert text.count("disk full at") == 1 and "Traceback" not in text
    assert "stopped while waiting for space" in text
