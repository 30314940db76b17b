"""Outbound emails per second through the outbox to a local SMTP server (aiosmtpd).

    python -m benchmarks.outbound_bench [--emails 500] [--batch 20] [--db-url URL]

Queues ``--emails`` replies (one transaction each, as agents pressing Send do: outbox row, folder
entry, audit event), then one sender drains the outbox into an aiosmtpd relay in this process:
per message a claim (per batch), the ``committing`` mark, one SMTP connection (EHLO, MAIL, RCPT,
DATA), the record and the .eml into the blob store.  The folder entries reach the search index
through the search outbox written with each message, which the sender does not drain (its cost is
not in these figures).  Prints one JSON line per phase: messages, seconds, per second, CPU of
this process.  The relay is aiosmtpd's own server in a process of its own (``--relay thread``: a
thread of this one, counting what it receives).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from casestore import cases, customers
from casestore.db import make_engine, session_factory, upgrade
from casestore.outbound import services
from casestore.outbound.drafts import OutboxPolicy
from casestore.outbound.sender import Sender, SenderConfig
from casestore.outbound.templates import Templates
from casestore.outbound.transports import SmtpConfig, SmtpTransport
from ingest.blobs import FileBlobStore


class _Counting:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received += 1
        return f"250 2.0.0 Ok: queued as B{self.received}"


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the relay did not listen on {port} within 30 s")


def _report(phase: str, n: int, began: float, cpu: float, **extra: object) -> None:
    wall, used = time.perf_counter() - began, time.process_time() - cpu
    print(json.dumps({"phase": phase, "messages": n, "seconds": round(wall, 2), "per_second": round(n / wall, 1),
                      "cpu_ms_per_message": round(used / n * 1000, 2), **extra}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=500)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--db-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--relay", choices=("process", "thread"), default="process",
                        help="aiosmtpd in its own process (as a relay is; default) or a thread of this one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outbound-bench-"))
    engine = make_engine(args.db_url or f"sqlite:///{work / 'casework.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="B-1", name="Jane Doe", email="jane@example.com")
        cases.upsert_case(s, ref="BENCH-2025-000001", customer_id="B-1", case_type="complaint", subject="bench")
    policy = OutboxPolicy(from_address="Cases <cases@cases.example>", rate_limit_per_day=0)
    templates = Templates()
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.emails):
        with sessions() as s, s.begin():
            services.queue_message(s, case_ref="BENCH-2025-000001", channel="email", actor="bench", policy=policy,
                                   templates=templates, template="acknowledgement")
    _report("queue", args.emails, began, cpu)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    handler = _Counting()
    relay: subprocess.Popen[bytes] | Controller
    if args.relay == "process":  # aiosmtpd's own command line with its Sink handler (accepts, keeps nothing)
        relay = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                  "-l", f"127.0.0.1:{port}"])
        _wait_for_port(port)
    else:
        relay = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="relay.bench")
        relay.start()
    try:
        sender = Sender(sessions=sessions, blobs=FileBlobStore(work / "blobs"),
                        transports={"email": SmtpTransport(SmtpConfig(host="127.0.0.1", port=port, security="none"))},
                        config=SenderConfig(batch_size=args.batch))
        began, cpu = time.perf_counter(), time.process_time()
        sent = 0
        while sent < args.emails:
            report = sender.run_once()
            if report.claimed == 0:
                raise SystemExit(f"the outbox ran dry after {sent} of {args.emails}: {report}")
            sent += report.sent
        _report("send", sent, began, cpu, relay=args.relay, batch=args.batch,
                db=engine.dialect.name)
        if args.relay == "thread":
            assert handler.received == sent, (handler.received, sent)
    finally:
        if isinstance(relay, Controller):
            relay.stop()
        else:
            relay.terminate()
            relay.wait(10)
        engine.dispose()


if __name__ == "__main__":
    main()
