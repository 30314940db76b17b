"""Issue 16, points 6 and 8, on a real `casework serve`: the web form's rate limit is not reset
by an X-Forwarded-For header unless it comes from a configured proxy, and /health tells a
stranger only up or down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.connectors.conftest import free_port
from tests.e2e.test_serve_connectors import wait_for

FORM = {"id": "contact", "title": "Contact us", "fields": [{"name": "message", "required": True}]}
LIMIT = 3


@contextmanager
def serve(tmp_path: Path, **extra: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({"CASEWORK_DATA_DIR": str(tmp_path / "data"), "CASEWORK_SERVE__RUN_PIPELINE": "false",
                "CASEWORK_CONNECTORS__WEBFORM__ENABLED": "true",
                "CASEWORK_CONNECTORS__WEBFORM__FORMS": json.dumps([FORM]),
                "CASEWORK_CONNECTORS__WEBFORM__RATE_LIMIT": str(LIMIT), **extra})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "api", "serve", "--port", str(port)], env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT)

    def up() -> bool:
        assert server.poll() is None, f"serve exited with {server.returncode}:\n{log_path.read_text()}"
        try:
            return httpx.get(f"{base}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, 60, "/health", log_path)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def post_form(base: str, forwarded_for: str) -> int:
    """A post without a CSRF token: 403 when the rate limit lets it through, 429 when it does not."""
    return httpx.post(f"{base}/forms/contact", data={"message": "hi"}, headers={"X-Forwarded-For": forwarded_for},
                      timeout=10).status_code


def test_a_forwarded_for_header_from_a_stranger_does_not_reset_the_rate_limit(tmp_path: Path) -> None:
    with serve(tmp_path) as base:
        answers = [post_form(base, f"198.51.100.{i}") for i in range(LIMIT + 2)]
        assert answers == [403] * LIMIT + [429, 429], answers
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.json() == {"status": "ok"}, "a stranger learns up or down, nothing more"


def test_a_configured_proxy_is_believed_and_only_its_own_entry_counts(tmp_path: Path) -> None:
    with serve(tmp_path, CASEWORK_SERVE__TRUSTED_PROXIES=json.dumps(["127.0.0.0/8"])) as base:
        # the proxy (loopback here) names a different client each time: each has its own budget
        assert [post_form(base, f"198.51.100.{i}") for i in range(LIMIT + 2)] == [403] * (LIMIT + 2)
        # a client that writes its own X-Forwarded-For: the proxy appends the real address after it
        spoofed = [post_form(base, f"203.0.113.{i}, 198.51.100.77") for i in range(LIMIT + 1)]
        assert spoofed == [403] * LIMIT + [429], spoofed


def test_a_bad_trusted_proxies_setting_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({"CASEWORK_DATA_DIR": str(tmp_path / "data"), "CASEWORK_SERVE__TRUSTED_PROXIES": '["proxy.local"]'})
    proc = subprocess.run([sys.executable, "-m", "api", "serve", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "not an IP address or CIDR network" in proc.stdout + proc.stderr


def test_the_access_log_can_be_turned_off(tmp_path: Path) -> None:
    """``CASEWORK_SERVE__ACCESS_LOG=false``: no line per request (on by default: the client, method,
    path with the query's names but not its values, status and duration, written by the time serve
    has stopped)."""
    for setting, logged in (("true", True), ("false", False)):
        folder = tmp_path / setting
        folder.mkdir()
        with serve(folder, CASEWORK_SERVE__ACCESS_LOG=setting) as base:
            assert httpx.get(f"{base}/health?probe=marker", timeout=10).status_code == 200
        text = "".join(p.read_text() for p in folder.glob("serve-*.log"))
        line = re.search(r'casework\.access: 127\.0\.0\.1:\d+ - "GET /health\?probe" 200 [\d.]+ ms', text)
        assert (line is not None) is logged, text[-2000:]
        assert "marker" not in text, "a query's values are not logged"
