"""`CASEWORK_LOG__FORMAT=json`: every line a real `casework` process writes to stderr is one JSON
object with the time, level, logger and formatted message, the stage and item where known (in the
stage child processes too), and the traceback of an exception; the text default stays text."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

CASEWORK = [sys.executable, "-m", "api"]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """The embedded default only: the log format does not depend on the store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env["CASEWORK_DATA_DIR"] = str(tmp_path / "data")
    return env


def json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    parsed = []
    for line in lines:
        obj = json.loads(line)  # fails the test on any line that is not one JSON object
        assert isinstance(obj, dict), line
        assert {"time", "level", "logger", "message", "stage", "item_id", "case_ref"} <= obj.keys(), line
        parsed.append(obj)
    return parsed


def test_ingest_in_stage_processes_logs_json_with_stage_and_item(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = {**user_env, "CASEWORK_LOG__FORMAT": "json", "CASEWORK_WORKER__STAGE_PROCESSES": "processes",
           "OMP_THREAD_LIMIT": "1"}
    letter = tmp_path / "letter.csv"
    letter.write_text("name,reference\nJane Doe,nothing to match\n")
    done = subprocess.run([*CASEWORK, "-v", "ingest", str(letter), "--json"], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    item_id = json.loads(done.stdout)["results"][0]["item_id"]
    lines = json_lines(done.stderr)

    parent = {line["process"] for line in lines if line["logger"] == "api.stage_processes"}
    assert parent, "the parent logs the stage processes it started"
    about_item = [line for line in lines if line["item_id"] == item_id]
    stages = {line["stage"] for line in about_item}
    assert {"extract", "file"} <= stages, sorted(stages)
    assert {line["process"] for line in about_item}.isdisjoint(parent), "item lines come from the stage children"
    filed = [line for line in about_item if line["logger"] == "casestore.items"]
    assert filed and item_id in filed[0]["message"] and "%s" not in filed[0]["message"]  # %-args filled in
    assert all(line["time"].endswith("+00:00") for line in lines)


def test_an_exception_is_logged_with_its_traceback(tmp_path: Path, user_env: dict[str, str]) -> None:
    with socket.socket() as taken:  # the SMTP connector cannot listen on a port that is taken: it logs why
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**user_env, "CASEWORK_LOG__FORMAT": "json", "CASEWORK_CONNECTORS__SMTP__ENABLED": "true",
               "CASEWORK_CONNECTORS__SMTP__PORT": str(port)}
        err = tmp_path / "err.txt"
        with err.open("wb") as stderr:
            proc = subprocess.Popen([*CASEWORK, "connector", "smtp"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=stderr)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and "exc_info" not in err.read_text():
                    time.sleep(0.2)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    failures = [line for line in json_lines(err.read_text()) if line.get("exc_info")]
    assert failures, err.read_text()[-2000:]
    assert failures[0]["level"] == "ERROR" and failures[0]["logger"] == "connectors.runner"
    assert failures[0]["exc_info"].startswith("Traceback (most recent call last)")
    assert "smtp" in failures[0]["message"]


def test_text_is_the_default(tmp_path: Path, user_env: dict[str, str]) -> None:
    letter = tmp_path / "letter.csv"
    letter.write_text("name\nJohn Roe\n")
    done = subprocess.run([*CASEWORK, "-v", "ingest", str(letter), "--json"], env=user_env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and not any(line.startswith("{") for line in lines)
    assert any("[file] casestore.items: item " in line for line in lines), done.stderr[-2000:]


def test_serve_and_uvicorn_log_json(tmp_path: Path, user_env: dict[str, str]) -> None:
    from tests.e2e.test_serve_signals import start_serve

    env = {**user_env, "CASEWORK_LOG__FORMAT": "json", "CASEWORK_CLOCK__IN_SERVE": "false"}
    for args in (["user", "add", "ann", "--role", "agent"], ["token", "create", "ann"]):
        made = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr[-2000:]
    token = made.stdout.strip()
    server, log_path = start_serve(tmp_path, env)
    try:
        port = next(a for a in server.args if isinstance(a, str) and a.isdigit())  # type: ignore[union-attr]
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        # get-next is answered in front of the app's middlewares (api.get_next_fast): logged all the same
        got = httpx.post(f"http://127.0.0.1:{port}/api/v1/work/next", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
        assert got.status_code == 200 and got.json() == {"task": None}, got.text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    lines = json_lines(log_path.read_text())
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "casework.access", "api.serve"} <= loggers, sorted(loggers)
    access = [line for line in lines if line["logger"] == "casework.access"]  # api.access_log, not uvicorn's
    assert any("/health" in line["message"] and line["duration_ms"] >= 0
               and (line["method"], line["path"], line["status"]) == ("GET", "/health", 200) for line in access), access
    assert any((line["method"], line["path"], line["status"]) == ("POST", "/api/v1/work/next", 200)
               for line in access), access
    assert any(line["message"].startswith("casework serving on http://") for line in lines)
