"""Replies over REST: preview and send from a case, the outbox, the mailroom's letters, and
Twilio's signed status callbacks; the access rule holds for all of it (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from api.app import create_app
from api.outbound_parts import make_sender
from api.settings import OutboundSettings
from api.wiring import Runtime
from casestore import customers
from connectors.settings import ConnectorSettings, TwilioSettings
from tests.api.conftest import JANE_CASE, SAM_CASE, bearer, two_team_runtime
from tests.connectors.standin import stand_in

SID, TOKEN = "AC" + "3" * 32, "status-token"
CALLBACK = "http://testserver/webhooks/twilio/status"


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = two_team_runtime(
        tmp_path, db_url,
        outbound=OutboundSettings(from_address="Cases <cases@cases.example>", rate_limit_per_day=2,
                                  sms_status_callback_url=CALLBACK, letter_return_address="Example Ltd"),
        connectors=ConnectorSettings(twilio=TwilioSettings(account_sid=SID, auth_token=TOKEN,
                                                           from_number="+441234567890")))
    with runtime.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com",
                                  phone="+447700900123", address="1 High Street", postcode="AB1 2CD")
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as c:
        yield c


def test_an_agent_previews_and_sends_a_reply_that_lands_in_the_folder(rt: Runtime, client: TestClient) -> None:
    alice = bearer(rt, "alice")
    url = f"/api/v1/cases/{JANE_CASE}/replies"
    names = {(t["name"], t["channel"]) for t in client.get(f"{url}/templates", headers=alice).json()}
    assert {("acknowledgement", "email"), ("outcome", "letter"), ("request_for_information", "sms")} <= names
    request = {"template": "request_for_information", "fields": {"requested": "- your meter reading"}}
    preview = client.post(f"{url}/preview", json=request, headers=alice)
    assert preview.status_code == 200, preview.text
    draft = preview.json()
    assert draft["to"] == "jane@example.com" and draft["subject"].endswith(f"[{JANE_CASE}]")
    assert "- your meter reading" in draft["body"] and draft["problems"] == []
    edited = {"subject": "Your meter", "body": draft["body"].replace("Kind regards", "Thank you"),
              "idempotency_key": "click-1"}
    sent = client.post(url, json=edited, headers=alice)
    assert sent.status_code == 201, sent.text
    assert sent.json()["state"] == "queued" and sent.json()["search_index"] == "updated"
    again = client.post(url, json=edited, headers=alice)  # a double click
    assert again.json()["duplicate"] is True and again.json()["id"] == sent.json()["id"]
    folder = client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).json()
    [out] = [d for d in folder["documents"] if d["direction"] == "out"]
    assert out["item_id"] == sent.json()["id"] and out["delivery_state"] == "queued" and out["sender"] == "alice"
    [mine] = client.get(url, headers=alice).json()
    assert mine["subject"] == f"Your meter [{JANE_CASE}]" and mine["created_by"] == "alice"
    hits = client.get("/api/v1/search", params={"q": "meter reading"}, headers=alice).json()["hits"]
    assert [h["item_id"] for h in hits] == [sent.json()["id"]]
    # the second message today reaches the limit of 2; a third is refused with 429
    assert client.post(url, json={"template": "acknowledgement"}, headers=alice).status_code == 201
    limited = client.post(url, json={"template": "acknowledgement"}, headers=alice)
    assert limited.status_code == 429 and "limit is 2" in limited.json()["detail"]


def test_whoever_may_not_see_the_case_gets_404_and_sees_none_of_its_messages(rt: Runtime, client: TestClient) -> None:
    alice, bob, robot = bearer(rt, "alice"), bearer(rt, "bob"), bearer(rt, "robot")
    url = f"/api/v1/cases/{JANE_CASE}/replies"
    sent = client.post(url, json={"template": "acknowledgement"}, headers=alice).json()
    for path in (url, f"{url}/preview"):
        r = client.post(path, json={"template": "acknowledgement"}, headers=bob)
        assert r.status_code == 404 and "not visible" in r.json()["detail"]
    assert client.get(url, headers=bob).status_code == 404
    assert client.get("/api/v1/outbox", headers=bob).json() == []
    assert client.post(f"/api/v1/outbox/{sent['id']}/retry", headers=bob).status_code == 404
    assert client.post(url, json={"template": "acknowledgement"}, headers=robot).status_code == 403  # a system
    bad = client.post(f"/api/v1/cases/{SAM_CASE}/replies", json={"channel": "sms", "template": "outcome"},
                      headers=bearer(rt, "sue"))
    assert bad.status_code == 422 and "no mobile number" in bad.json()["detail"]
    typo = client.post(url, json={"template": "acknowledgment"}, headers=alice)
    assert typo.status_code == 422 and "choose one of" in typo.json()["detail"]
    assert [m["id"] for m in client.get("/api/v1/outbox", headers=alice).json()] == [sent["id"]]


def test_the_mailroom_prints_and_posts_a_letter(rt: Runtime, client: TestClient) -> None:
    alice, sue, bob = bearer(rt, "alice"), bearer(rt, "sue"), bearer(rt, "bob")
    sent = client.post(f"/api/v1/cases/{JANE_CASE}/replies", headers=alice,
                       json={"channel": "letter", "template": "outcome", "fields": {"decision": "Upheld."}}).json()
    assert client.get(f"/api/v1/letters/{sent['id']}/pdf", headers=sue).status_code == 409  # not made yet
    assert make_sender(rt).run_once().letters == 1
    [letter] = client.get("/api/v1/letters", headers=sue).json()
    assert letter["id"] == sent["id"] and letter["to"] == "Jane Doe"
    pdf = client.get(f"/api/v1/letters/{sent['id']}/pdf", headers=sue)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get("/api/v1/letters", headers=bob).json() == []
    assert client.post(f"/api/v1/letters/{sent['id']}/printed", headers=bob).status_code == 404
    assert client.post(f"/api/v1/letters/{sent['id']}/printed", headers=sue).json()["state"] == "printed"
    posted = client.post(f"/api/v1/letters/{sent['id']}/posted", headers=sue).json()
    assert posted["state"] == "posted" and posted["posted_at"]
    audit = client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).json()["audit"]
    assert [a["action"] for a in audit if a["item_id"] == sent["id"]] == [
        "outbound.queued", "letter.ready", "letter.printed", "letter.posted"]


def test_twilio_status_callbacks_must_be_signed_and_move_the_sms_on(rt: Runtime, client: TestClient) -> None:
    alice = bearer(rt, "alice")
    sent = client.post(f"/api/v1/cases/{JANE_CASE}/replies", headers=alice,
                       json={"channel": "sms", "template": "acknowledgement"}).json()
    reply = json.dumps({"sid": "SM" + "4" * 32, "status": "queued", "num_segments": "1"}).encode()
    with stand_in({("POST", f"/2010-04-01/Accounts/{SID}/Messages.json"): (201, "application/json", reply)}) as api:
        rt.settings.connectors.twilio.api_base_url = api.url
        assert make_sender(rt).run_once().sent == 1
        callback_url = parse_qs(api.requests[0].body.decode())["StatusCallback"][0]
    assert callback_url == f"{CALLBACK}?outbound={sent['id']}"
    callback = {"MessageSid": "SM" + "4" * 32, "MessageStatus": "delivered", "AccountSid": SID}
    path = f"/webhooks/twilio/status?outbound={sent['id']}"
    assert client.post(path, data=callback).status_code == 403
    forged = {"X-Twilio-Signature": RequestValidator("wrong").compute_signature(callback_url, callback)}
    assert client.post(path, data=callback, headers=forged).status_code == 403
    signed = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(callback_url, callback)}
    r = client.post(path, data=callback, headers=signed)
    assert r.status_code == 200 and r.json() == {"state": "delivered"}
    [msg] = client.get(f"/api/v1/cases/{JANE_CASE}/replies", headers=alice).json()
    assert msg["state"] == "delivered" and msg["provider_id"] == "SM" + "4" * 32


def test_a_reply_sent_for_a_task_is_recorded_with_it_and_only_for_a_task_of_its_case(
        rt: Runtime, client: TestClient) -> None:
    from casestore.cases import get_case
    from casestore.work.inbound import start_imported
    from casestore.work.models import WorkTask

    setup = rt.work
    with rt.sessions() as s, s.begin():
        ids = {}
        for ref in (JANE_CASE, SAM_CASE):
            case = get_case(s, ref=ref)
            start_imported(s, case=case, setup=setup)
            s.flush()
            ids[ref] = s.query(WorkTask.id).filter(WorkTask.case_id == case.id).order_by(WorkTask.id).first()[0]
    alice = bearer(rt, "alice")
    url = f"/api/v1/cases/{JANE_CASE}/replies"
    wrong = client.post(url, json={"template": "acknowledgement", "task_id": ids[SAM_CASE]}, headers=alice)
    assert wrong.status_code == 422 and "not a task of case" in wrong.json()["detail"]
    sent = client.post(url, json={"template": "acknowledgement", "task_id": ids[JANE_CASE]}, headers=alice)
    assert sent.status_code == 201, sent.text
    [mine] = client.get(url, headers=alice).json()
    assert mine["task_id"] == ids[JANE_CASE]
