"""Issue 15.1: `casework dlq replay` replays each outstanding entry once, even while `casework serve`
is running and the replayed items fail again at once; the list shows one entry per item and stage
with its attempts; single items and filters can be replayed or discarded, and each action is in the
audit trail."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.conftest import free_port

CASEWORK = [sys.executable, "-m", "api"]


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"casework {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def dead(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(run(env, "dlq", "list", "--json", *args).stdout)
    return listed


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the bus and the CLI path; the store is shared code
def test_replay_while_serving_replays_each_entry_once(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = dict(user_env)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "empty.pdf").write_bytes(b"")  # unfixable by design: fails in extract every time
    (inbox / "broken.pdf").write_bytes(b"%PDF-1.4\n% not really a pdf\n%%EOF\n")
    report = json.loads(run(env, "ingest", str(inbox), "--json", check=False).stdout)
    assert report["failed"] == 2, report
    ids = {Path(r["source"]).name: r["item_id"] for r in report["results"]}

    first = dead(env)
    assert sorted(d["item_id"] for d in first) == sorted(ids.values())
    assert all(d["attempts"] == 1 and d["state"] == "dead" for d in first)

    port = free_port()
    env["CASEWORK_WORKER__STAGE_PROCESSES"] = "threads"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([*CASEWORK, "serve", "--port", str(port)], env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
    try:
        replayed = run(env, "dlq", "replay", "--wait", "30", check=False)
        assert "2 dead-letter entries replayed" in replayed.stdout, replayed.stdout + replayed.stderr
        assert "2 failed again" in replayed.stdout, replayed.stdout
        assert replayed.returncode == 1  # something failed again: the exit code says so
        # The serving stages fail the replays again; nothing replays those new letters by itself.
        again = wait_until(lambda: [d for d in dead(env) if d["attempts"] == 2] or None, 30, "second attempts")
        time.sleep(2)
        listed = dead(env)
        assert len(listed) == 2 and {d["attempts"] for d in listed} == {2}, listed
        assert len(again) >= 1

        # A second replay replays the two entries once more, not the letters the first one caused.
        second = run(env, "dlq", "replay", "--item", ids["empty.pdf"], check=False)
        assert "1 dead-letter entries replayed" in second.stdout, second.stdout + second.stderr
        wait_until(lambda: any(d["attempts"] == 3 for d in dead(env)), 30, "third attempt of empty.pdf")
    finally:
        server.terminate()
        server.wait(timeout=60)

    # A replay that ran and recorded itself does not publish the same letter again.
    assert "0 dead-letter entries replayed" in run(env, "dlq", "replay", "--stage", "classify").stdout
    refused = run(env, "dlq", "discard", "--reason", "x", check=False)
    assert refused.returncode == 2 and "--all" in refused.stderr
    discarded = run(env, "dlq", "discard", "--item", ids["broken.pdf"], "--reason", "not a PDF; asked sender")
    assert "1 dead-letter entries discarded" in discarded.stdout
    remaining = dead(env)
    assert [d["item_id"] for d in remaining] == [ids["empty.pdf"]]
    everything = dead(env, "--all")
    assert {d["item_id"]: d["state"] for d in everything}[ids["broken.pdf"]] == "discarded"
    item = json.loads(run(env, "item", "show", ids["broken.pdf"], "--json").stdout)
    assert item is not None
