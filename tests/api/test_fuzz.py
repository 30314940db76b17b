"""Fuzzing every route of ``/openapi.json`` with schemathesis, as an agent: bad input never gets a 5xx.

The app is served by a real uvicorn on loopback over a real store (PostgreSQL), with a
customer, a case of the agent's team to find, and the webhook and web-form connectors enabled.
``schemathesis run`` (its coverage phase tries boundary values: huge integers, longest strings, wrong
types; then random fuzzing) sends a bounded number of requests per route with the agent's bearer
token and fails on any 5xx. Deterministic (``--generation-deterministic``), so a failure reproduces;
the output names the request.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, users
from tests.ports import free_port

EXAMPLES_PER_ROUTE = 10
ADMIN_PATHS = "^/api/v1/admin/"
CONNECTORS: dict[str, Any] = {  # their public routes are fuzzed too (they answer bad signatures with 403)
    "twilio": {"enabled": True, "auth_token": "fuzz-token"},
    "fax": {"enabled": True, "secret": "fuzz-secret"},
    "webform": {"enabled": True, "forms": [{"id": "complaint", "title": "Complaint", "fields": [
        {"name": "email", "type": "email", "required": True, "metadata_key": "sender_email"},
        {"name": "message", "type": "textarea", "required": True}, {"name": "upload", "type": "file"}]}]},
}
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def _free_port() -> int:
    return free_port()


@pytest.fixture
def fuzz_runtime(_postgres: Any, tmp_path: Path) -> Iterator[Runtime]:
    """On PostgreSQL only: it refuses what SQLite takes (NUL in text, ids past 32 bits), so the fuzzer
    finds there whatever it would find on SQLite, in half the time; the specific bad-input tests
    (test_bad_input.py) run on both."""
    pg_url = _postgres.create()
    runtime = open_runtime(Settings(data_dir=tmp_path / "data", db={"url": pg_url}, connectors=CONNECTORS))
    with runtime.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com")
        cases.upsert_case(s, ref="CM-2025-000001", customer_id="C1", case_type="complaint", status="open",
                          opened_at=None, subject="noise at night", team="complaints")
        users.add_user(s, name="alice", role="agent", teams=["complaints"])
    yield runtime
    runtime.close()
    _postgres.drop(pg_url)


@pytest.fixture
def api_url(fuzz_runtime: Runtime) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(fuzz_runtime), host="127.0.0.1", port=port,
                                          log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def fuzz(api_url: str, token: str, cwd: Path, *extra: str) -> str:
    """``schemathesis run`` over the app's schema; its report, or AssertionError naming every 5xx."""
    # HTTP methods a route does not have get 405 from the framework: not worth a request per path each
    (cwd / "schemathesis.toml").write_text("[phases.coverage]\nunexpected-methods = []\n")
    run = subprocess.run(
        [SCHEMATHESIS, "run", f"{api_url}/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
         "--max-examples", str(EXAMPLES_PER_ROUTE), "--generation-deterministic", "--continue-on-failure",
         "--request-timeout", "60", "--workers", "1", "--no-color", *extra],
        capture_output=True, text=True, timeout=600, cwd=cwd,
    )
    assert run.returncode == 0, f"schemathesis found 5xx answers:\n{run.stdout[-12000:]}\n{run.stderr[-2000:]}"
    return run.stdout


def operations_tested(report: str) -> tuple[int, int]:
    """(operations tested, operations selected) from the report's summary."""
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    done = re.search(r"Tested: (\d+)", report)
    assert selected and done, report
    return int(done.group(1)), int(selected.group(1))


@pytest.mark.postgres
def test_no_route_answers_bad_input_with_a_5xx(api_url: str, fuzz_runtime: Runtime, tmp_path: Path) -> None:
    """Every route as an agent, but the admin routes (403 to an agent: fuzzed as an admin below)."""
    with fuzz_runtime.sessions() as s, s.begin():
        token = users.create_token(s, name="alice")
    done, total = operations_tested(fuzz(api_url, token, tmp_path, "--exclude-path-regex", ADMIN_PATHS))
    assert done == total >= 11, "every selected route is fuzzed"


@pytest.mark.postgres
def test_no_admin_route_answers_bad_input_with_a_5xx(api_url: str, fuzz_runtime: Runtime, tmp_path: Path) -> None:
    """The admin routes as an admin (the fuzzer found a token id past 32 bits answered 500 here)."""
    with fuzz_runtime.sessions() as s, s.begin():
        users.add_user(s, name="root", role="admin")
        token = users.create_token(s, name="root")
    done, _ = operations_tested(fuzz(api_url, token, tmp_path, "--include-path-regex", ADMIN_PATHS))
    assert done >= 6
