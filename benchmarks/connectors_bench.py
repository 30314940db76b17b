"""Items per second each connector sustains into the bus (embedded SQLite bus, blobs on disk).

    python -m benchmarks.connectors_bench [--items 500] [--only smtp,imap,...]

Each connector gets its real counterpart: smtplib over one SMTP connection, a dovecot mailbox
(needs dovecot-imapd), signed webhooks over HTTP to a uvicorn server (Twilio, fax), a web form
fetched and posted, and files in watched folders (plain files, call-record rows, integration
XML). The clock runs from the first input to the last item published (flushed). One JSON line
per connector; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import smtplib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import APIRouter, FastAPI
from PIL import Image
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from connectors.calls import CallRecordsWatcher
from connectors.drops import DropWatcher
from connectors.fax import fax_router, sign
from connectors.folder import FolderWatcher
from connectors.imap import ImapFolderWatcher
from connectors.metrics import ConnectorStats, Registry
from connectors.settings import (
    CallSettings,
    DropIntegration,
    FaxSettings,
    ImapAccount,
    SmtpSettings,
    TwilioSettings,
    WatchedFolder,
    WebformSettings,
)
from connectors.smtp import SmtpReceiver
from connectors.state import StateStore
from connectors.twilio_sms import twilio_router
from connectors.webform import webform_router
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus

Bench = Callable[[Path, SqliteBus, FileBlobStore, Registry, int], float]


def _mail(i: int) -> bytes:
    return (f"From: customer{i}@example.com\r\nTo: cases@cases.example\r\nSubject: CM-2025-{i:06d}\r\n"
            f"Message-ID: <bench-{i}-{time.time_ns()}@example.com>\r\n\r\nPlease update me on my case.\r\n").encode()


def _wait(stats: ConnectorStats, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while stats.received + stats.duplicates < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stats.name}: {stats.received} of {n} after {timeout}s")
        time.sleep(0.005)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve(router: APIRouter) -> Iterator[str]:
    app = FastAPI()
    app.include_router(router)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(10)


def bench_smtp(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    settings = SmtpSettings(port=_free_port(), domains=["cases.example"])
    r = SmtpReceiver(settings, bus=bus, blobs=blobs, state=StateStore(tmp / "smtp.db"), registry=reg)
    r.start()
    mails = [_mail(i) for i in range(n)]
    try:
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", settings.port) as s:
            for m in mails:
                s.sendmail("customer@example.com", ["cases@cases.example"], m)
        _wait(r.emitter.stats, n)
        return time.perf_counter() - t0
    finally:
        r.close()


def bench_imap(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    from imapclient import IMAPClient  # type: ignore[import-untyped,unused-ignore]

    from tests.connectors.dovecot import PASSWORD, USER, start_dovecot

    server = start_dovecot(_free_port())
    try:
        c = IMAPClient("127.0.0.1", port=server.port, ssl=False)
        c.login(USER, PASSWORD)
        for i in range(n):
            c.append("INBOX", _mail(i))
        c.logout()
        acct = ImapAccount(name="bench", host="127.0.0.1", port=server.port, ssl=False, username=USER,
                           password=PASSWORD, after="seen", poll_s=0.2)
        stop = threading.Event()
        w = ImapFolderWatcher(acct, "INBOX", bus=bus, blobs=blobs, state=StateStore(tmp / "imap.db"), stop=stop,
                              registry=reg)
        t0 = time.perf_counter()
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        _wait(w.stats, n)
        elapsed = time.perf_counter() - t0
        stop.set()
        t.join(10)
        return elapsed
    finally:
        server.stop()


def bench_twilio(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    token = "bench-token"
    router = twilio_router(TwilioSettings(account_sid="AC" + "0" * 32, auth_token=token), bus=bus, blobs=blobs,
                           state=StateStore(tmp / "twilio.db"), registry=reg)
    validator = RequestValidator(token)
    with _serve(router) as base, httpx.Client() as http:
        url = f"{base}/webhooks/twilio/sms"
        posts = []
        for i in range(n):
            params = {"MessageSid": f"SM{i:032d}", "From": f"+4477009{i:05d}", "Body": f"About CM-2025-{i:06d}",
                      "NumMedia": "0"}
            posts.append((params, validator.compute_signature(url, params)))
        t0 = time.perf_counter()
        for params, sig in posts:
            http.post(url, data=params, headers={"X-Twilio-Signature": sig}).raise_for_status()
        return time.perf_counter() - t0


def bench_fax(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    secret = "bench-secret"
    router = fax_router(FaxSettings(secret=secret), bus=bus, blobs=blobs, state=StateStore(tmp / "fax.db"),
                        registry=reg)
    page = Image.new("1", (1728, 2200), 1)
    with _serve(router) as base, httpx.Client() as http:
        bodies = []
        for i in range(n):
            buf = io.BytesIO()
            page.save(buf, format="TIFF", compression="group4", description=f"+4420{i:08d}")
            req = http.build_request("POST", f"{base}/webhooks/fax", data={"fax_id": f"FX{i}"},
                                     files={"file": ("fax.tif", buf.getvalue(), "image/tiff")})
            body = req.read()
            bodies.append((body, req.headers["content-type"]))
        t0 = time.perf_counter()
        for body, ctype in bodies:
            http.post(f"{base}/webhooks/fax", content=body, headers={
                "content-type": ctype, "X-Casework-Signature": sign(secret, body)}).raise_for_status()
        return time.perf_counter() - t0


def bench_webform(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    settings = WebformSettings.model_validate({"rate_limit": n + 10, "forms": [{
        "id": "contact", "title": "Contact us", "fields": [
            {"name": "email", "type": "email", "required": True, "metadata_key": "sender_email"},
            {"name": "message", "type": "textarea", "required": True}]}]})
    router = webform_router(settings, bus=bus, blobs=blobs, state=StateStore(tmp / "webform.db"), registry=reg)
    with _serve(router) as base, httpx.Client() as http:
        t0 = time.perf_counter()
        for i in range(n):
            page = http.get(f"{base}/forms/contact").text
            m = re.search(r'name="_csrf" value="([^"]+)"', page)
            assert m
            http.post(f"{base}/forms/contact", data={"_csrf": m.group(1), "email": f"c{i}@example.com",
                                                     "message": f"About CM-2025-{i:06d}"}).raise_for_status()
        return time.perf_counter() - t0


def _folder_run(w: FolderWatcher, n: int) -> float:
    t0 = time.perf_counter()
    while w.emitter.stats.received + w.emitter.stats.duplicates < n:
        w.scan_once()
    return time.perf_counter() - t0


def bench_folder(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    root = tmp / "scans"
    w = FolderWatcher(root, bus=bus, blobs=blobs, registry=reg, state=StateStore(tmp / "folders.db"),
                      config=WatchedFolder(name="scans", path=str(root), channel="file", stable_s=0.0, watch="poll"))
    for i in range(n):
        (root / f"{i:06d}.txt").write_text(f"Letter about CM-2025-{i:06d} from customer{i}@example.com")
    return _folder_run(w, n)


def bench_calls(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    root = tmp / "calls"
    w = CallRecordsWatcher(CallSettings(path=str(root)), bus=bus, blobs=blobs, registry=reg, stable_s=0.0,
                           state=StateStore(tmp / "calls.db"))
    rows = "".join(f"c{i},+4477009{i:05d},2026-11-20T09:{i % 60:02d}:00Z,{i % 600},agent{i % 7},note {i}\n"
                   for i in range(n))
    (root / "export.csv").write_text("call_id,caller,start_time,duration,agent,notes\n" + rows)
    return _folder_run(w, n)


def bench_drops(tmp: Path, bus: SqliteBus, blobs: FileBlobStore, reg: Registry, n: int) -> float:
    root = tmp / "billing"
    w = DropWatcher(DropIntegration(name="billing", path=str(root), filename_pattern=r"^(?P<customer_id>C-\d+)_",
                                    fields={"case_ref": "CaseRef", "source_id": "DocumentId"}),
                    bus=bus, blobs=blobs, registry=reg, stable_s=0.0, state=StateStore(tmp / "drops.db"))
    for i in range(n):
        (root / f"C-{i:05d}_inv.xml").write_text(f'<Invoice xmlns="urn:x"><DocumentId>INV-{i}</DocumentId>'
                                                 f"<CaseRef>CM-2025-{i:06d}</CaseRef></Invoice>")
    return _folder_run(w, n)


BENCHES: dict[str, Bench] = {"smtp": bench_smtp, "imap": bench_imap, "twilio": bench_twilio, "fax": bench_fax,
                             "webform": bench_webform, "folder": bench_folder, "calls": bench_calls,
                             "drops": bench_drops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--only", default=",".join(BENCHES))
    args = parser.parse_args()
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as d:
            tmp = Path(d)
            bus = SqliteBus(tmp / "bus.db")
            try:
                seconds = BENCHES[name](tmp, bus, FileBlobStore(tmp / "blobs"), Registry(), args.items)
            finally:
                bus.close()
        print(json.dumps({"bench": "connectors", "connector": name, "items": args.items,
                          "seconds": round(seconds, 3), "items_per_s": round(args.items / seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
