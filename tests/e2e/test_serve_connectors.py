"""Issue 6's promise, tried as a user would: `casework serve` with every connector enabled through
the README's CASEWORK_CONNECTORS__* variables; an email over SMTP, one in a dovecot mailbox, a
signed Twilio SMS and MMS, a signed fax webhook, a scan dropped into a folder, a web form, an
integration upload (plus an integration drop file and a call record export) each end up filed in
the customer's case (or in triage), seen with `casework case show`; sent again, none is
duplicated; unsigned webhooks and oversize mail are refused and leave nothing behind; SIGTERM
stops the server."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped,unused-ignore]
from PIL import Image, ImageDraw, ImageFont
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from ingest.messages import item_id_for
from tests.classify.mailroom_render import FONT, pdf_form, scan_png
from tests.connectors.conftest import free_port, raw_items
from tests.connectors.dovecot import PASSWORD, USER, Dovecot, start_dovecot
from tests.connectors.standin import stand_in

CASEWORK = [sys.executable, "-m", "api"]
REF = "CM-2025-004817"
CUSTOMERS = """customer_id,name,email,phone,address,postcode,account_number
C-1001,Jane Doe,jane.doe@example.com,+44 7700 900123,1 High Street,AB1 2CD,ACC-0001
C-1002,John Roe,john@example.org,+44 7700 900456,2 Low Road,ZZ9 9ZZ,ACC-0002
"""
CASES = f"""ref,customer_id,case_type,status,opened_at,subject
{REF},C-1001,complaint,open,2025-03-01T09:00:00Z,Late delivery
"""
JANE_EMAIL, JANE_PHONE = "jane.doe@example.com", "+447700900123"
SID, TW_TOKEN = "AC" + "7" * 32, "twilio-auth-token"
FAX_SECRET = "fax-shared-secret"
SMTP_DOMAIN = "cases.example"
SMTP_MAX = 100_000
FORM = {"id": "complaint", "title": "Make a complaint", "case_type": "complaint",
        "fields": [{"name": "name", "label": "Your name", "required": True},
                   {"name": "email", "label": "Email", "type": "email", "required": True,
                    "metadata_key": "sender_email"},
                   {"name": "details", "label": "Details", "type": "textarea", "required": True}]}
WAIT_FILED_S = 60.0


# -- helpers ----------------------------------------------------------------------------------

def mail(message_id: str, subject: str, body: str, sender: str = f"Jane Doe <{JANE_EMAIL}>") -> bytes:
    return (f"From: {sender}\r\nTo: cases@{SMTP_DOMAIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def fax_tiff(lines: list[str]) -> bytes:
    """A one-page G4 fax at 200 dpi with the letter's text, as a fax provider delivers it."""
    page = Image.new("L", (1654, 1100), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 36)
    for n, line in enumerate(lines):
        draw.text((150, 150 + n * 60), line, fill=0, font=font)
    out = io.BytesIO()
    page.convert("1").save(out, format="TIFF", compression="group4", dpi=(200, 200))
    return out.getvalue()


def photo_png() -> bytes:
    img = Image.new("RGB", (320, 200), (120, 110, 100))
    ImageDraw.Draw(img).rectangle((60, 50, 260, 150), fill=(60, 40, 30))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def fax_multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "caseworkfaxboundary"
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
              f"Content-Type: image/tiff\r\n\r\n".encode() + data + f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def hmac_signature(secret: str, body: bytes) -> str:
    """The README's fax signature: sha256= + hex HMAC-SHA256 of the raw body (computed here, not by the product)."""
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"casework {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli_parallel(env: dict[str, str], *commands: list[str]) -> list[str]:
    """Run several CLI commands at once (each takes seconds to start); their stdout, in order."""
    procs = [subprocess.Popen([*CASEWORK, *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    outs = []
    for c, p in zip(commands, procs, strict=True):
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, f"casework {' '.join(c)} exited {p.returncode}\n{stdout}\n{stderr}"
        outs.append(stdout)
    return outs


def wait_for(check: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:]) if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- serve log tail ---\n{tail}")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot(free_port())
    yield server
    server.stop()


# -- the test ---------------------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the store on PostgreSQL is covered elsewhere
def test_serve_takes_every_channel_into_cases_once_and_refuses_bad_input(
        tmp_path: Path, user_env: dict[str, str], dovecot: Dovecot) -> None:
    started = time.monotonic()
    env = dict(user_env)
    data_dir = Path(env["CASEWORK_DATA_DIR"])
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    cli(env, "import", "customers", str(tmp_path / "customers.csv"))
    cli(env, "import", "cases", str(tmp_path / "cases.csv"))

    port, smtp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    twilio_url = f"{base}/webhooks/twilio/sms"
    scans, spool, drops, calls = (tmp_path / d for d in ("scans", "recvq", "billing", "calls"))
    env.update({
        "CASEWORK_WORKER__STAGE_PROCESSES": "threads",
        "CASEWORK_CONNECTORS__IMAP__ENABLED": "true",
        "CASEWORK_CONNECTORS__IMAP__ACCOUNTS": json.dumps([{
            "name": "cases", "host": "127.0.0.1", "port": dovecot.port, "ssl": False, "username": USER,
            "password": PASSWORD, "folders": ["INBOX"], "idle_timeout_s": 5, "poll_s": 1, "timeout_s": 5}]),
        "CASEWORK_CONNECTORS__IMAP__BACKOFF_INITIAL_S": "0.5",
        "CASEWORK_CONNECTORS__SMTP__ENABLED": "true",
        "CASEWORK_CONNECTORS__SMTP__PORT": str(smtp_port),
        "CASEWORK_CONNECTORS__SMTP__DOMAINS": json.dumps([SMTP_DOMAIN]),
        "CASEWORK_CONNECTORS__SMTP__MAX_MESSAGE_BYTES": str(SMTP_MAX),
        "CASEWORK_CONNECTORS__TWILIO__ENABLED": "true",
        "CASEWORK_CONNECTORS__TWILIO__ACCOUNT_SID": SID,
        "CASEWORK_CONNECTORS__TWILIO__AUTH_TOKEN": TW_TOKEN,
        "CASEWORK_CONNECTORS__TWILIO__PUBLIC_URL": twilio_url,
        # the MMS media stand-in for api.twilio.com is on loopback: allowed here explicitly (default: refused)
        "CASEWORK_CONNECTORS__TWILIO__MEDIA_HOSTS": json.dumps(["127.0.0.1"]),
        "CASEWORK_CONNECTORS__TWILIO__MEDIA_ALLOW_PRIVATE": "true",
        "CASEWORK_CONNECTORS__FAX__ENABLED": "true",
        "CASEWORK_CONNECTORS__FAX__SECRET": FAX_SECRET,
        "CASEWORK_CONNECTORS__FAX__SPOOL_DIR": str(spool),
        "CASEWORK_CONNECTORS__FAX__POLL_S": "0.5",
        "CASEWORK_CONNECTORS__FOLDERS__ENABLED": "true",
        "CASEWORK_CONNECTORS__FOLDERS__FOLDERS": json.dumps([{
            "name": "mailroom", "path": str(scans), "team": "", "stable_s": 0.3, "poll_s": 0.3}]),
        "CASEWORK_CONNECTORS__DROPS__ENABLED": "true",
        "CASEWORK_CONNECTORS__DROPS__INTEGRATIONS": json.dumps([{
            "name": "billing", "path": str(drops), "poll_s": 0.3,
            "fields": {"source_id": "DocumentId", "case_ref": "CaseRef", "sender_email": "customer.email"}}]),
        "CASEWORK_CONNECTORS__CALLS__ENABLED": "true",
        "CASEWORK_CONNECTORS__CALLS__PATH": str(calls),
        "CASEWORK_CONNECTORS__CALLS__POLL_S": "0.3",
        "CASEWORK_CONNECTORS__WEBFORM__ENABLED": "true",
        "CASEWORK_CONNECTORS__WEBFORM__FORMS": json.dumps([FORM]),
    })
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([*CASEWORK, "serve", "--port", str(port)], env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
    try:
        # while serve starts: an integration user for uploads, a supervisor to read cases over the API
        cli_parallel(env, ["user", "add", "mailroom", "--role", "integration"],
                     ["user", "add", "sue", "--role", "supervisor"])
        upload_token, sue_token = (t.strip() for t in cli_parallel(env, ["token", "create", "mailroom"],
                                                                    ["token", "create", "sue"]))
        _exercise(env, data_dir, base, twilio_url, smtp_port, upload_token, sue_token, dovecot,
                  (scans, spool, drops, calls), server, log_path)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert time.monotonic() - started < 120, "the whole journey should take well under two minutes"


def _exercise(env: dict[str, str], data_dir: Path, base: str, twilio_url: str, smtp_port: int,
              upload_token: str, sue_token: str, dovecot: Dovecot, folders: tuple[Path, ...],
              server: subprocess.Popen[bytes], log_path: Path) -> None:
    scans, _spool, drops, calls = folders
    http = httpx.Client(base_url=base, timeout=30)
    sue = {"Authorization": f"Bearer {sue_token}"}

    def health() -> dict[str, Any] | None:
        assert server.poll() is None, f"serve exited with {server.returncode}:\n{log_path.read_text()}"
        try:
            r = http.get("/health", headers=sue)  # the connectors' details need a token
        except httpx.TransportError:
            return None
        return r.json() if r.status_code == 200 else None

    def connectors_up() -> dict[str, Any] | None:
        h = health()
        if not h:
            return None
        states = {name: c["state"] for name, c in h["connectors"].items()}
        wanted = ("smtp", "imap:cases:INBOX", "mailroom", "drop:billing", "calls", "fax-spool", "twilio", "fax",
                  "webform")
        return h if all(states.get(n) == "running" for n in wanted) else None

    up = wait_for(connectors_up, 90, "/health with every connector running", log_path)
    assert up["status"] == "ok", up

    # -- first round: one of each ------------------------------------------------------------
    expected: dict[str, str] = {}  # what -> item_id

    smtp_mail = mail("smtp-1@example.com", f"Re: {REF} still no parcel",
                     "Hello, my parcel has still not arrived. Regards, Jane Doe")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
        assert s.sendmail(JANE_EMAIL, [f"cases@{SMTP_DOMAIN}"], smtp_mail) == {}
    expected["smtp"] = item_id_for("email:msgid:smtp-1@example.com")

    imap_mail = mail("imap-1@example.com", f"{REF}: photos of the box",
                     "The box was crushed when it finally came. Jane Doe")
    box = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    box.login(USER, PASSWORD)
    box.append("INBOX", imap_mail)
    expected["imap"] = item_id_for("email:msgid:imap-1@example.com")

    def twilio_post(params: dict[str, str], token: str | None = TW_TOKEN) -> httpx.Response:
        headers = {} if token is None else {
            "X-Twilio-Signature": RequestValidator(token).compute_signature(twilio_url, params)}
        return http.post("/webhooks/twilio/sms", data=params, headers=headers)

    sms = {"MessageSid": "SM" + "1" * 32, "AccountSid": SID, "From": JANE_PHONE, "To": "+441234567890",
           "Body": f"Any news on {REF}? Jane", "NumMedia": "0"}
    assert twilio_post(sms).status_code == 200
    expected["sms"] = item_id_for(f"sms:{sms['MessageSid']}")

    auth = "Basic " + base64.b64encode(f"{SID}:{TW_TOKEN}".encode()).decode()
    with stand_in({("GET", "/media/ME1"): (200, "image/png", photo_png())}, basic_auth=auth) as media:
        mms = {"MessageSid": "MM" + "2" * 32, "AccountSid": SID, "From": JANE_PHONE, "To": "+441234567890",
               "Body": f"Photo of the damage for {REF}", "NumMedia": "1",
               "MediaUrl0": f"{media.url}/media/ME1", "MediaContentType0": "image/png"}
        r = twilio_post(mms)
        assert r.status_code == 200, r.text
        expected["mms"] = item_id_for(f"sms:{mms['MessageSid']}")

        fax_body, fax_ctype = fax_multipart(
            {"fax_id": "FX-1001", "from": JANE_PHONE, "to": "+441234000999", "pages": "1"}, "fax.tif",
            fax_tiff(["Fax to Customer Services", f"Case reference {REF}", "From Jane Doe, 1 High Street,",
                      "AB1 2CD. My parcel is still missing.", "Phone +44 7700 900123"]))
        r = http.post("/webhooks/fax", content=fax_body,
                      headers={"Content-Type": fax_ctype, "X-Casework-Signature": hmac_signature(FAX_SECRET, fax_body)})
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is False
        expected["fax"] = r.json()["item_id"]

        scan = scan_png(["Jane Doe", "1 High Street", "AB1 2CD", "", f"Your reference: {REF}", "",
                         "Dear Sir or Madam,", "I am writing again about my parcel, which has not arrived.",
                         "Please call me on +44 7700 900123 or write to jane.doe@example.com.", "",
                         "Yours faithfully,", "Jane Doe"], random.Random(6))
        (scans / "letter-0001.png").write_bytes(scan)
        expected["scan"] = item_id_for(f"scan:sha256:{hashlib.sha256(scan).hexdigest()}")

        page = http.get("/forms/complaint")
        assert page.status_code == 200
        m = re.search(r'name="_csrf" value="([^"]+)"', page.text)
        assert m, page.text
        form = {"_csrf": m.group(1), "name": "Jane Doe", "email": JANE_EMAIL,
                "details": f"The courier was rude when I asked about {REF}."}
        r = http.post("/forms/complaint", data=form)
        assert r.status_code == 200 and 'id="thanks"' in r.text, r.text
        nonce = m.group(1).split(".")[1]
        expected["webform"] = item_id_for(f"webform:complaint:{nonce}")
        shown_ref = re.search(r'id="reference">([^<]+)<', r.text)
        assert shown_ref and shown_ref[1] == expected["webform"][:8].upper(), r.text

        letter = pdf_form(["Jane Doe <jane.doe@example.com>", f"Re: {REF}", "",
                           "Copy of my complaint letter, sent through your partner portal."])
        upload = {"channel": "api", "source_id": "portal-778",
                  "metadata": json.dumps({"sender_email": JANE_EMAIL, "subject": f"Portal upload {REF}"})}
        bearer = {"Authorization": f"Bearer {upload_token}"}
        r = http.post("/api/v1/items", data=upload, files={"file": ("letter.pdf", letter, "application/pdf")},
                      headers=bearer)
        assert r.status_code == 202, r.text
        assert r.json()["duplicate"] is False
        expected["upload"] = r.json()["item_id"]

        bill = json.dumps({"DocumentId": "BILL-9", "CaseRef": REF, "customer": {"email": JANE_EMAIL},
                           "text": f"Refund of 12.50 GBP for case {REF} for Jane Doe"}).encode()
        (drops / "refund.json").write_bytes(bill)
        expected["drop"] = item_id_for("file:billing:BILL-9")

        call_csv = ("CallID,From,To,Start Time,Duration,Agent,Notes\n"
                    f"call-31,{JANE_PHONE},+441234000000,2026-11-20T09:15:00Z,00:04:10,alice,"
                    f"Jane Doe called about {REF}; parcel still missing\n").encode()
        (calls / "export.csv").write_bytes(call_csv)
        expected["call"] = item_id_for("call:call-31")

        # -- refused: unsigned or wrongly signed webhooks, oversize mail ---------------------------
        bad_sms = {**sms, "MessageSid": "SM" + "3" * 32, "Body": f"unsigned text about {REF}"}
        assert twilio_post(bad_sms, token=None).status_code == 403
        assert twilio_post(bad_sms, token="not-the-auth-token").status_code == 403
        bad_fax = fax_tiff(["unsigned fax", REF])
        bad_fax_body, bad_fax_ctype = fax_multipart({"fax_id": "FX-6666", "from": JANE_PHONE}, "x.tif", bad_fax)
        assert http.post("/webhooks/fax", content=bad_fax_body,
                         headers={"Content-Type": bad_fax_ctype}).status_code == 403
        assert http.post("/webhooks/fax", content=bad_fax_body, headers={
            "Content-Type": bad_fax_ctype,
            "X-Casework-Signature": hmac_signature("another-secret", bad_fax_body)}).status_code == 403
        big = mail("big-1@example.com", f"{REF} huge", "\r\n".join(["x" * 76] * (SMTP_MAX // 78 + 10)))
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # smtplib declares SIZE= in MAIL FROM
                s.sendmail(JANE_EMAIL, [f"cases@{SMTP_DOMAIN}"], big)
            assert refused.value.smtp_code == 552
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:  # a client that does not declare the size
            s.helo()
            s.mail(JANE_EMAIL)
            s.rcpt(f"cases@{SMTP_DOMAIN}")
            code, _ = s.data(big)
            assert code == 552
        refused_ids = {item_id_for(f"sms:{bad_sms['MessageSid']}"), item_id_for("fax:FX-6666"),
                       item_id_for("email:msgid:big-1@example.com")}

        # -- every item filed: in the case (all of them quote it and come from its customer) -------
        def filed() -> dict[str, Any] | None:
            health()
            folder = http.get(f"/api/v1/cases/{REF}", headers=sue).json()
            queue = http.get("/api/v1/triage", headers=sue).json()
            seen = {d["item_id"] for d in folder["documents"]} | {q["item_id"] for q in queue}
            return folder if set(expected.values()) <= seen else None

        wait_for(filed, WAIT_FILED_S, "every item in the case or in triage", log_path)
        shown, queued = cli_parallel(env, ["case", "show", REF, "--json"], ["triage", "list", "--json"])
        folder = json.loads(shown)
        triage_ids = {q["item_id"] for q in json.loads(queued)}
        in_case = {d["item_id"]: d["channel"] for d in folder["documents"]}
        where = {what: ("case" if i in in_case else "triage" if i in triage_ids else "missing")
                 for what, i in expected.items()}
        assert "missing" not in where.values(), where
        assert where == dict.fromkeys(expected, "case"), (
            "every item quotes the case and comes from its customer: each should be attached", where)
        assert in_case[expected["fax"]] == "fax" and in_case[expected["sms"]] == "sms"
        assert in_case[expected["webform"]] == "webform" and in_case[expected["call"]] == "call"
        docs_before = Counter(d["item_id"] for d in folder["documents"])
        assert refused_ids.isdisjoint(in_case) and refused_ids.isdisjoint(triage_ids)

        # -- second round: each source sends the same thing again ----------------------------------
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
            assert s.sendmail(JANE_EMAIL, [f"cases@{SMTP_DOMAIN}"], smtp_mail) == {}
        box.append("INBOX", imap_mail)  # a new UID, the same Message-ID
        assert twilio_post(sms).status_code == 200
        assert twilio_post(mms).status_code == 200
        assert [r.path for r in media.requests] == ["/media/ME1"], "a MessageSid already taken is not fetched again"
        r = http.post("/webhooks/fax", content=fax_body,
                      headers={"Content-Type": fax_ctype, "X-Casework-Signature": hmac_signature(FAX_SECRET, fax_body)})
        assert r.status_code == 200 and r.json() == {"item_id": expected["fax"], "duplicate": True}, r.text
        (scans / "letter-0001-again.png").write_bytes(scan)
        assert http.post("/forms/complaint", data=form).status_code == 200  # a double click / browser re-post
        r = http.post("/api/v1/items", data=upload, files={"file": ("letter.pdf", letter, "application/pdf")},
                      headers=bearer)
        assert r.status_code == 202 and r.json()["item_id"] == expected["upload"], r.text
        assert r.json()["duplicate"] is True
        (drops / "refund-resent.json").write_bytes(bill)
        (calls / "export-again.csv").write_bytes(call_csv)
    box.logout()

    def resends_seen() -> dict[str, Any] | None:
        h = health()
        c = h["connectors"] if h else {}
        names = ("smtp", "imap:cases:INBOX", "twilio", "fax", "mailroom", "webform", "drop:billing", "calls")
        return c if all(c.get(n, {}).get("duplicates", 0) >= 1 for n in names) else None

    counters = wait_for(resends_seen, 30, "every connector to recognise its re-send", log_path)
    time.sleep(2)  # give a wrongly republished item time to reach the case
    for name in ("smtp", "imap:cases:INBOX", "mailroom", "webform", "drop:billing", "calls"):
        assert (counters[name]["received"], counters[name]["duplicates"]) == (1, 1), (name, counters[name])
    assert (counters["twilio"]["received"], counters["twilio"]["duplicates"]) == (2, 2), counters["twilio"]
    assert (counters["fax"]["received"], counters["fax"]["duplicates"]) == (1, 1), counters["fax"]
    assert counters["twilio"]["failed"] >= 2 and counters["fax"]["failed"] >= 2 and counters["smtp"]["failed"] >= 2
    for folder_path in (scans, drops, calls):
        assert [p.name for p in folder_path.iterdir() if not p.name.startswith(".")] == [], folder_path

    again = json.loads(cli(env, "case", "show", REF, "--json").stdout)
    assert Counter(d["item_id"] for d in again["documents"]) == docs_before, "a re-send must not add documents"
    filed_audit = Counter(a["item_id"] for a in again["audit"] if a["action"] == "item.filed")
    assert all(filed_audit[i] == 1 for i in expected.values()), filed_audit
    for gone in refused_ids:
        r = http.get(f"/api/v1/items/{gone}", headers=sue)
        assert r.status_code == 404, f"refused input {gone} was stored: {r.text}"

    # -- SIGTERM: the server stops within 30 s (how cleanly: see the test below) ------------------
    http.close()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"serve did not exit within 30 s of SIGTERM\n{log_path.read_text()[-4000:]}") from None

    # nothing was published twice, and nothing of what was refused was stored
    bus = SqliteBus(data_dir / "bus.db")
    try:
        keys = Counter(i.idempotency_key for i in raw_items(bus))
    finally:
        bus.close()
    assert [k for k, n in keys.items() if n > 1] == [], keys
    assert len(keys) == len(expected), keys
    blobs = FileBlobStore(data_dir / "blobs")
    for body in (bad_sms["Body"].encode(), bad_fax, big):
        assert not blobs.path(hashlib.sha256(body).hexdigest()).exists()


def start_serve(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log_path.open("ab") as log_file:
        server = subprocess.Popen([*CASEWORK, "serve", "--port", str(port)], env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert server.poll() is None, f"serve exited with {server.returncode}:\n{log_path.read_text()}"
        try:
            return httpx.get(f"{base}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, 90, "/health", log_path)
    except BaseException:
        server.kill()  # never leave a serve running behind a failed test
        server.wait(10)
        raise
    return server, base


def test_sigterm_stops_serve_cleanly_and_a_restart_files_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update({"CASEWORK_DATA_DIR": str(tmp_path / "data"), "CASEWORK_WORKER__STAGE_PROCESSES": "threads"})
    log_path = tmp_path / "serve.log"
    server, _ = start_serve(env, log_path)
    try:
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
    assert code == 0, f"serve died of SIGTERM (exit {code}) instead of shutting down"
    bus = sqlite3.connect(tmp_path / "data" / "bus.db")
    try:
        left = bus.execute("SELECT grp FROM members").fetchall()
    finally:
        bus.close()
    assert left == [], f"stage consumers still registered after serve stopped: {left}"

    server, _ = start_serve(env, log_path)  # a process manager restarts it
    try:
        note = b"A note from someone@example.net about nothing in particular."
        (tmp_path / "data" / "drop" / "note.txt").write_bytes(note)
        item_id = item_id_for(f"file:sha256:{hashlib.sha256(note).hexdigest()}")
        wait_for(lambda: cli(env, "item", "show", item_id, "--json", check=False).returncode == 0, 20,
                 "the restarted serve to file a dropped file", log_path)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
