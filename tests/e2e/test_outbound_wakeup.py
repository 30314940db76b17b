"""An idle sender is woken when a message is queued (casestore.outbound.wakeup): with ``poll_s``
at 10 minutes, a queued message still reaches the aiosmtpd relay within 20 s, which polling
alone could not do.  In one process (the sender thread of `casework serve`; SQLite and
PostgreSQL) and across processes on PostgreSQL (`casework worker sender`, LISTEN/NOTIFY, the
message queued by another `casework` process).  SQLite across processes keeps polling."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from api.outbound_parts import SenderThread, outbox_policy
from api.settings import DbSettings, OutboundSettings, Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers
from casestore.outbound.models import OutboundMessage
from casestore.outbound.services import queue_message
from tests.casestore.outbound.relay import smtp_relay
from tests.e2e.test_outbound_crash import REF, reply, start_sender, state_of

POLL_S = 600.0  # far beyond the wait below: only a wake-up can deliver in time
WITHIN_S = 20.0


def wait_until(check: Callable[[], bool], what: str, timeout: float = WITHIN_S, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
    raise AssertionError(f"{what}: not within {timeout:.0f} s (poll_s is {POLL_S:.0f} s)\n{tail}")


def test_a_message_queued_in_the_serving_process_wakes_its_sender_thread(tmp_path: Path, db_url: str) -> None:
    with smtp_relay() as relay:
        settings = Settings(data_dir=tmp_path / "data", db=DbSettings(url=db_url), outbound=OutboundSettings(
            smtp_host="127.0.0.1", smtp_port=relay.port, smtp_security="none", poll_s=POLL_S,
            from_address="Cases <cases@cases.example>"))
        rt = open_runtime(settings)
        stop = threading.Event()
        thread = SenderThread(rt, stop)
        try:
            with rt.sessions() as s, s.begin():
                customers.upsert_customer(s, customer_id="C-1", name="Jane Doe", email="jane@example.com")
                cases.upsert_case(s, ref=REF, customer_id="C-1", case_type="complaint", subject="late delivery")
            thread.start()
            wait_until(lambda: thread.sender.rounds >= 1, "the sender's first (empty) round")
            # a transaction that queues and then rolls back wakes nobody and sends nothing
            with rt.sessions() as s:
                s.begin()
                queue_message(s, case_ref=REF, channel="email", actor="alice", policy=outbox_policy(settings),
                              subject="never", body="rolled back")
                s.rollback()
            with rt.sessions() as s, s.begin():
                queued = queue_message(s, case_ref=REF, channel="email", actor="alice", policy=outbox_policy(settings),
                                       subject="Your complaint", body="We are on it.")
            assert queued.state == "queued"
            wait_until(lambda: relay.count() == 1, "the queued message at the relay")
            [mail] = relay.messages()
            assert mail["Subject"].startswith("Your complaint") and mail["To"] == "jane@example.com"
            wait_until(lambda: thread.sender.rounds >= 2 and _state(rt, queued.id) == "sent", "recorded as sent")
        finally:
            stop.set()
            thread.join(30)
            rt.close()
        assert not thread.thread.is_alive()


def _state(rt: Runtime, outbound_id: str) -> str:
    with rt.sessions() as s:
        msg = s.get(OutboundMessage, outbound_id)
        return msg.state if msg is not None else ""


@pytest.fixture
def pg_env(user_env: dict[str, str]) -> dict[str, str]:
    if "CASEWORK_DB__URL" not in user_env:
        pytest.skip("across processes only PostgreSQL notifies; SQLite senders in other processes poll")
    settings = Settings(data_dir=Path(user_env["CASEWORK_DATA_DIR"]), db=DbSettings(url=user_env["CASEWORK_DB__URL"]))
    rt = open_runtime(settings)
    with rt.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C-7", name="Jane Doe", email="jane@example.com")
        cases.upsert_case(s, ref=REF, customer_id="C-7", case_type="complaint", subject="late delivery")
    rt.close()
    return {**user_env, "CASEWORK_OUTBOUND__FROM_ADDRESS": "Cases <cases@cases.example>",
            "CASEWORK_OUTBOUND__SMTP_HOST": "127.0.0.1", "CASEWORK_OUTBOUND__SMTP_SECURITY": "none",
            "CASEWORK_OUTBOUND__POLL_S": str(POLL_S)}


def test_a_message_queued_by_another_process_wakes_the_sender_worker_on_postgres(
        pg_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "sender.log"
    with smtp_relay() as relay:
        env = {**pg_env, "CASEWORK_OUTBOUND__SMTP_PORT": str(relay.port)}
        proc = start_sender(env, log)
        try:
            wait_until(lambda: "listening for queued messages" in log.read_text(errors="replace"),
                       "the sender worker listening", timeout=60, log=log)
            first = reply(env)  # `casework case reply`: another process
            wait_until(lambda: state_of(env, first) == "sent", "the first message sent", log=log)
            second = reply(env)  # the sender is idle now, with 10 minutes to its next look
            wait_until(lambda: state_of(env, second) == "sent", "the second message sent", log=log)
            assert relay.count() == 2
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(30) == 0
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                raise

