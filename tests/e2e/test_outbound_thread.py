"""Issue 12's "done when", through the real pipeline: the SMTP receiver and the Twilio webhook take
the customer's messages in, the stages file them, an agent answers over REST, the sender hands the
answers to an aiosmtpd relay and a Twilio stand-in.  The customer's email reply and SMS answer come
back to the same case by thread; a delivery callback, an outcome letter posted by the mailroom,
and a bounce that flags the address are all in the folder.  SQLite and PostgreSQL."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from api.app import create_app
from api.outbound_parts import make_sender
from api.settings import DbSettings, OutboundSettings, Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, items, users
from casestore.models import Item
from connectors.settings import ConnectorSettings, SmtpSettings, TwilioSettings
from connectors.smtp import SmtpReceiver
from ingest.pipeline import PipelineRunner
from tests.casestore.outbound.relay import Relay, smtp_relay
from tests.connectors.conftest import free_port
from tests.connectors.standin import StandIn, stand_in

COMPLAINT, CLAIM = "CM-2025-000101", "CM-2025-000102"
JANE, JANE_MOBILE = "jane.doe@example.com", "+447700900123"
SID, TOKEN = "AC" + "5" * 32, "e2e-twilio-token"
PUBLIC = "http://testserver"


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[Runtime, TestClient, Relay, StandIn, int]]:
    with smtp_relay() as relay, stand_in({}) as twilio_api:
        inbound_port = free_port()
        settings = Settings(
            data_dir=tmp_path / "data", db=DbSettings(url=db_url),
            outbound=OutboundSettings(smtp_host="127.0.0.1", smtp_port=relay.port, smtp_security="none",
                                      from_address="Complaints <complaints@cases.example>",
                                      sms_status_callback_url=f"{PUBLIC}/webhooks/twilio/status",
                                      letter_return_address="Example Ltd, PO Box 1, Townsville"),
            connectors=ConnectorSettings(
                smtp=SmtpSettings(enabled=True, host="127.0.0.1", port=inbound_port, domains=["cases.example"]),
                twilio=TwilioSettings(enabled=True, account_sid=SID, auth_token=TOKEN, from_number="+441234567890",
                                      api_base_url=twilio_api.url, public_url=f"{PUBLIC}/webhooks/twilio/sms")))
        rt = open_runtime(settings)
        with rt.sessions() as s, s.begin():
            customers.upsert_customer(s, customer_id="C-9", name="Jane Doe", email=JANE, phone=JANE_MOBILE,
                                      address="1 High Street\nTownsville", postcode="AB1 2CD")
            cases.upsert_case(s, ref=COMPLAINT, customer_id="C-9", case_type="complaint", subject="noise at night")
            cases.upsert_case(s, ref=CLAIM, customer_id="C-9", case_type="claim", subject="broken window")
            users.add_user(s, name="alice", role="agent")
            users.add_user(s, name="mo", role="supervisor")  # the mailroom
        runner = PipelineRunner(rt.pipeline_parts())
        receiver = SmtpReceiver(settings.connectors.smtp, bus=rt.bus, blobs=rt.blobs)
        runner.start()
        receiver.start()
        try:
            with TestClient(create_app(rt)) as client:
                yield rt, client, relay, twilio_api, inbound_port
        finally:
            receiver.close()
            runner.close()
            rt.close()


def token(rt: Runtime, name: str) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        return {"Authorization": f"Bearer {users.create_token(s, name=name)}"}


def smtp_in(port: int, raw: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("sender@example.net", ["cases@cases.example"], raw.replace("\n", "\r\n").encode())


def filed(rt: Runtime, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` inbound items are filed; their views, oldest first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with rt.read_sessions() as s:
            ids = list(s.scalars(select(Item.item_id).where(Item.direction == "in").order_by(Item.filed_at)))
            if len(ids) >= count:
                return [items.item_view(s, item_id=i) for i in ids]
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} items filed within 120 s")


def test_replies_go_out_and_the_customers_answers_come_back_to_the_case(
        world: tuple[Runtime, TestClient, Relay, StandIn, int]) -> None:
    rt, client, relay, twilio_api, inbound = world
    alice, mo = token(rt, "alice"), token(rt, "mo")
    smtp_in(inbound, f"From: Jane Doe <{JANE}>\nTo: cases@cases.example\nSubject: Still noisy ({COMPLAINT})\n"
                     "Message-ID: <jane-1@mail.example.com>\nDate: Mon, 1 Dec 2026 09:00:00 +0000\n\n"
                     "The neighbours were loud again last night.\n")
    [first] = filed(rt, 1)
    assert first["case_ref"] == COMPLAINT

    # an agent answers her email from the case; the relay gets it, threaded
    sent = client.post(f"/api/v1/cases/{COMPLAINT}/replies", headers=alice,
                       json={"template": "request_for_information",
                             "fields": {"requested": "- the dates and times of the noise"}})
    assert sent.status_code == 201, sent.text
    assert make_sender(rt).run_once().sent == 1
    [mail] = relay.messages()
    ours = str(mail["Message-ID"])
    assert f"[{COMPLAINT}]" in mail["Subject"] and mail["In-Reply-To"] == "<jane-1@mail.example.com>"
    assert mail["References"] == "<jane-1@mail.example.com>" and mail["To"] == JANE

    # her reply (through the SMTP receiver) comes back to the same case, by thread
    smtp_in(inbound, f"From: Jane Doe <{JANE}>\nTo: complaints@cases.example\nSubject: Re: {mail['Subject']}\n"
                     f"Message-ID: <jane-2@mail.example.com>\nIn-Reply-To: {ours}\n"
                     f"References: <jane-1@mail.example.com> {ours}\nDate: Tue, 2 Dec 2026 09:00:00 +0000\n\n"
                     "Monday and Tuesday, after 11pm.\n")
    answer = filed(rt, 2)[1]
    assert answer["outcome"] == "attached" and answer["case_ref"] == COMPLAINT
    assert answer["decision"]["evidence"]["rule"] == "thread + agreement"

    # an SMS, its signed delivery callback, and her SMS answer (she has two open cases: the thread decides)
    sms_sid = "SM" + "6" * 32
    twilio_api.routes[("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")] = (
        201, "application/json", json.dumps({"sid": sms_sid, "status": "queued", "num_segments": "1"}).encode())
    sms = client.post(f"/api/v1/cases/{COMPLAINT}/replies", headers=alice,
                      json={"channel": "sms", "body": f"Thanks Jane, we will visit on Friday. Ref {COMPLAINT}"})
    assert sms.status_code == 201, sms.text
    assert make_sender(rt).run_once().sent == 1
    callback_url = f"{PUBLIC}/webhooks/twilio/status?outbound={sms.json()['id']}"
    status = {"MessageSid": sms_sid, "MessageStatus": "delivered", "AccountSid": SID}
    signature = RequestValidator(TOKEN).compute_signature(callback_url, status)
    r = client.post(f"/webhooks/twilio/status?outbound={sms.json()['id']}", data=status,
                    headers={"X-Twilio-Signature": signature})
    assert r.json() == {"state": "delivered"}
    inbound_sms = {"MessageSid": "SM" + "7" * 32, "AccountSid": SID, "From": JANE_MOBILE, "To": "+441234567890",
                   "Body": "Friday is fine", "NumMedia": "0"}
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/webhooks/twilio/sms", inbound_sms)
    assert client.post("/webhooks/twilio/sms", data=inbound_sms,
                       headers={"X-Twilio-Signature": signature}).status_code == 200
    sms_answer = filed(rt, 3)[2]
    assert sms_answer["channel"] == "sms" and sms_answer["case_ref"] == COMPLAINT
    assert sms_answer["decision"]["evidence"]["rule"] == "thread + agreement"

    # the outcome letter: a PDF in the folder, printed and posted by the mailroom
    letter = client.post(f"/api/v1/cases/{COMPLAINT}/replies", headers=alice,
                         json={"channel": "letter", "template": "outcome",
                               "fields": {"decision": "We have spoken to your neighbours."}}).json()
    assert make_sender(rt).run_once().letters == 1
    for action in ("printed", "posted"):
        assert client.post(f"/api/v1/letters/{letter['id']}/{action}", headers=mo).json()["state"] == action
    folder = client.get(f"/api/v1/cases/{COMPLAINT}", headers=alice).json()
    out = {d["item_id"]: d for d in folder["documents"] if d["direction"] == "out"}
    assert out[letter["id"]]["content_type"] == "application/pdf" and out[letter["id"]]["delivery_state"] == "posted"
    assert out[sms.json()["id"]]["delivery_state"] == "delivered"
    assert out[sent.json()["id"]]["content_type"] == "message/rfc822"
    assert [d["direction"] for d in folder["documents"]].count("in") == 3

    # a bounce of our first email: linked to the case, the address flagged, the next email refused
    smtp_in(inbound, "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\nTo: complaints@cases.example\n"
                     "Subject: Undelivered Mail Returned to Sender\nMessage-ID: <bounce-1@mx.example.com>\n"
                     "MIME-Version: 1.0\n"
                     'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n\n'
                     "--b1\nContent-Type: text/plain\n\nYour message could not be delivered: user unknown.\n"
                     "--b1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n\n"
                     f"Final-Recipient: rfc822; {JANE}\nAction: failed\nStatus: 5.1.1\n"
                     f"--b1\nContent-Type: message/rfc822\n\nFrom: complaints@cases.example\nTo: {JANE}\n"
                     f"Subject: {mail['Subject']}\nMessage-ID: {ours}\n\nThe original.\n--b1--\n")
    bounce = filed(rt, 4)[3]
    assert bounce["outcome"] == "noise"
    [first_reply] = [m for m in client.get(f"/api/v1/cases/{COMPLAINT}/replies", headers=alice).json()
                     if m["id"] == sent.json()["id"]]
    assert first_reply["state"] == "bounced" and bounce["item_id"] in first_reply["last_error"]
    audit = client.get(f"/api/v1/cases/{COMPLAINT}", headers=alice).json()["audit"]
    bounced = [a for a in audit if a["action"] == "outbound.bounced"]
    assert bounced and bounced[0]["details"]["bounce_item_id"] == bounce["item_id"]
    refused = client.post(f"/api/v1/cases/{COMPLAINT}/replies", headers=alice, json={"template": "outcome"})
    assert refused.status_code == 422 and "flagged" in refused.json()["detail"]
