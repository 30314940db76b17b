"""The Reply panel on the embedded default (SQLite, Tantivy): page server time, and how long a reply
takes from pressing Send to the SMTP server having it.

- ``case page``: ``GET /cases/{ref}`` with the Reply panel, on the case of
  ``benchmarks.workbench_pages`` (500 timeline entries), in-process through the ASGI stack as that
  benchmark does; ``reply preview``: ``POST /cases/{ref}/reply/preview`` (htmx), the sandboxed
  template rendered.
- ``send to SMTP``: ``POST /cases/{ref}/reply`` (the web form, a fresh idempotency key each
  time) while the product's sender runs as the thread `casework serve` starts
  (``api.outbound_parts.SenderThread``) against aiosmtpd in this process; the time from the POST
  to the relay's DATA handler having the message, one reply after another.  A queued message
  wakes the idle sender (``casestore.outbound.wakeup``); else it looks for due messages every
  ``CASEWORK_OUTBOUND__POLL_S`` (default 1 s).  ``--poll`` gives the poll intervals to run with.
- ``--worker``: the sender runs as its own process, `casework worker sender` (production's way),
  instead of the thread; the store is whatever ``CASEWORK_DB__URL`` names (PostgreSQL: woken by
  LISTEN/NOTIFY; SQLite: only the poll).

    python -m benchmarks.reply_bench [--runs 200] [--sends 50] [--poll 1.0 30] [--worker]

Prints one JSON line per measurement: median and p95 in milliseconds, and the 1-minute load.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from api.outbound_parts import SenderThread
from api.settings import OutboundSettings, Settings
from api.wiring import open_runtime
from benchmarks.workbench_pages import REF, _client, _measure, _report, _seed


class _Arrivals:
    """The relay's handler: when each message (by its subject's marker) arrived."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.seen = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        found = re.search(rb"bench-([0-9a-f]{32})", content)
        with self.seen:
            if found:
                self.at[found.group(1).decode()] = time.perf_counter()
            self.seen.notify_all()
        return "250 2.0.0 Ok: queued"

    def wait(self, marker: str, timeout: float = 30.0) -> float:
        with self.seen:
            if not self.seen.wait_for(lambda: marker in self.at, timeout):
                raise SystemExit(f"reply {marker} did not reach the relay within {timeout} s")
            return self.at[marker]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """`casework worker sender` with the benchmark's store and outbound settings; returns once it
    listens (PostgreSQL) or has started (SQLite)."""
    o = settings.outbound
    env = {**os.environ, "CASEWORK_DATA_DIR": str(settings.data_dir), "CASEWORK_OUTBOUND__FROM_ADDRESS": o.from_address,
           "CASEWORK_OUTBOUND__SMTP_HOST": o.smtp_host, "CASEWORK_OUTBOUND__SMTP_PORT": str(o.smtp_port),
           "CASEWORK_OUTBOUND__SMTP_SECURITY": o.smtp_security, "CASEWORK_OUTBOUND__POLL_S": str(o.poll_s)}
    fh = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "api", "worker", "sender"], env=env, stdout=fh, stderr=fh)
    ready = "listening for queued messages" if settings.db_url.startswith("postgresql") else "outbox sender started"
    deadline = time.monotonic() + 120
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the sender worker did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    return proc


def run(runs: int, sends: int, poll_s: float, data_dir: Path, pages: bool, worker: bool = False) -> None:
    arrivals = _Arrivals()
    port = free_port()
    relay = Controller(arrivals, hostname="127.0.0.1", port=port)
    relay.start()
    settings = Settings(data_dir=data_dir, outbound=OutboundSettings(
        from_address="Complaints <complaints@bench.example>", smtp_host="127.0.0.1", smtp_port=port,
        smtp_security="none", poll_s=poll_s, rate_limit_per_day=0))
    rt = open_runtime(settings)
    stop = threading.Event()
    sender = SenderThread(rt, stop)
    proc: subprocess.Popen[bytes] | None = None
    try:
        client, csrf = _client(rt, "alice")
        if pages:
            _measure("case page with the Reply panel", runs, lambda: _check(client.get(f"/cases/{REF}")))
            form = {"csrf_token": csrf, "channel": "email", "template": "acknowledgement", "idempotency_key": "p",
                    "step": "template"}
            _measure("reply preview (htmx)", runs, lambda: _check(client.post(
                f"/cases/{REF}/reply/preview", data=form, headers={"HX-Request": "true"})))
        if worker:
            proc = _worker(settings, data_dir.parent / "sender.log")
        else:
            sender.start()
        times = []
        for n in range(sends + 3):
            marker = uuid.uuid4().hex
            began = time.perf_counter()
            r = client.post(f"/cases/{REF}/reply", follow_redirects=False, data={
                "csrf_token": csrf, "channel": "email", "template": "acknowledgement", "idempotency_key": marker,
                "subject": f"Your complaint bench-{marker}", "text": f"Dear Jane,\nreply bench-{marker}\n"})
            if r.status_code != 303:
                raise SystemExit(f"send refused: {r.status_code} {r.text[:300]}")
            arrived = arrivals.wait(marker)
            if n >= 3:  # the first few warm the sender's connection path and caches
                times.append((arrived - began) * 1000)
        where = "worker process" if worker else "serve's thread"
        _report(f"send to SMTP ({where}, {settings.db_url.split(':')[0]}, poll_s={poll_s})", times)
    finally:
        stop.set()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        else:
            sender.join(10)
        rt.close()
        relay.stop()


def _check(response: object) -> None:
    status = getattr(response, "status_code", 0)
    if status != 200:
        raise SystemExit(f"page answered {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sends", type=int, default=50)
    parser.add_argument("--poll", type=float, nargs="*", default=[1.0, 30.0])
    parser.add_argument("--worker", action="store_true", help="the sender as `casework worker sender`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        _seed(data_dir)
        for i, poll_s in enumerate(args.poll):
            run(args.runs, args.sends, poll_s, data_dir, pages=i == 0 and not args.worker, worker=args.worker)


if __name__ == "__main__":
    main()
