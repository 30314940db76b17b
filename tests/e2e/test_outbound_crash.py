"""Issue 12's promise, with real processes: `casework worker sender` killed (SIGKILL) between
handing an email to the relay and recording the answer sends it exactly once; killed before the
end of the message, a restarted sender sends it, again exactly once.  The relay is aiosmtpd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.settings import DbSettings, Settings
from api.wiring import open_runtime
from casestore import cases, customers
from casestore.db import make_engine
from casestore.outbound.models import OutboundMessage
from tests.casestore.outbound.relay import Relay, smtp_relay

CASEWORK = [sys.executable, "-m", "api"]
REF = "CM-2025-000777"


def cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"casework {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def wait_for(check: Callable[[], Any], what: str, log: Path, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-3000:]}")


def state_of(env: dict[str, str], outbound_id: str) -> str:
    """Read straight from the store (a CLI call per poll costs seconds of start-up)."""
    engine = make_engine(Settings(data_dir=Path(env["CASEWORK_DATA_DIR"]),
                                  db=DbSettings(url=env.get("CASEWORK_DB__URL", ""))).db_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(select(OutboundMessage.state).where(OutboundMessage.id == outbound_id)).scalar())
    finally:
        engine.dispose()


def reply(env: dict[str, str]) -> str:
    return str(json.loads(cli(env, "case", "reply", REF, "--template", "acknowledgement", "--as", "alice",
                              "--json"))["id"])


def message_ids(relay: Relay) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in relay.messages())


@pytest.fixture
def env(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    settings = Settings(data_dir=Path(user_env["CASEWORK_DATA_DIR"]),
                        db=DbSettings(url=user_env.get("CASEWORK_DB__URL", "")))
    rt = open_runtime(settings)
    with rt.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C-7", name="Jane Doe", email="jane@example.com")
        cases.upsert_case(s, ref=REF, customer_id="C-7", case_type="complaint", subject="late delivery")
    rt.close()
    return {**user_env, "CASEWORK_OUTBOUND__FROM_ADDRESS": "Cases <cases@cases.example>",
            "CASEWORK_OUTBOUND__SMTP_HOST": "127.0.0.1", "CASEWORK_OUTBOUND__SMTP_SECURITY": "none",
            "CASEWORK_OUTBOUND__CLAIM_LEASE_S": "2", "CASEWORK_OUTBOUND__POLL_S": "0.2"}


def start_sender(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    return subprocess.Popen([*CASEWORK, "worker", "sender"], env=env, stdout=fh, stderr=fh)


def kill_when(relay: Relay, hook: str, proc: list[subprocess.Popen[bytes]]) -> None:
    """Kill the sender (SIGKILL, no clean-up) the first time the relay reaches ``hook``."""
    def kill() -> None:
        setattr(relay, hook, None)
        proc[0].send_signal(signal.SIGKILL)
        proc[0].wait(30)
    setattr(relay, hook, kill)


def test_a_killed_sender_never_sends_twice_and_never_loses_a_message(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "sender.log"
    with smtp_relay() as relay:
        env = {**env, "CASEWORK_OUTBOUND__SMTP_PORT": str(relay.port)}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            # 1. killed after the relay has the whole message, before the sender records the answer
            first = reply(env)
            procs.append(start_sender(env, log))
            kill_when(relay, "on_data", procs)
            wait_for(lambda: procs[0].poll() is not None, "the sender to be killed at the end of the DATA", log)
            assert procs[0].returncode == -signal.SIGKILL and relay.count() == 1
            procs[0] = start_sender(env, log)
            wait_for(lambda: state_of(env, first) == "unconfirmed", "the restarted sender to find it unconfirmed", log)
            later = reply(env)  # the restarted sender goes on working ...
            wait_for(lambda: state_of(env, later) == "sent", "the next message to be sent", log)
            counts = message_ids(relay)
            assert len(counts) == 2 and set(counts.values()) == {1}  # ... and never sent the first again
            procs[0].send_signal(signal.SIGTERM)
            assert procs[0].wait(30) == 0
            # 2. killed in the middle of the SMTP transaction (at RCPT): the relay keeps nothing
            third = reply(env)
            procs[0] = start_sender(env, log)
            kill_when(relay, "on_rcpt", procs)
            wait_for(lambda: procs[0].poll() is not None, "the sender to be killed at RCPT", log)
            assert relay.count() == 2
            procs[0] = start_sender(env, log)
            wait_for(lambda: state_of(env, third) == "sent", "the restarted sender to send it again", log)
            counts = message_ids(relay)
            assert len(counts) == 3 and set(counts.values()) == {1}
            folder = json.loads(cli(env, "case", "show", REF, "--json"))
            states = {d["item_id"]: d["delivery_state"] for d in folder["documents"] if d["direction"] == "out"}
            assert states == {first: "unconfirmed", later: "sent", third: "sent"}
            # a person finds the first one in the relay's log and confirms it
            cli(env, "outbox", "confirm", first, "--reason", "in the relay log")
            assert state_of(env, first) == "sent" and message_ids(relay) == counts
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(30)
                    except subprocess.TimeoutExpired:
                        os.kill(p.pid, signal.SIGKILL)
