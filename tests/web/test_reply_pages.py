"""Replying from the case page, the messages that need a person, and the mailroom, against the
running workbench; the sender is the product's own (``casestore.outbound.sender``) delivering to
a real SMTP server (aiosmtpd, ``tests.casestore.outbound.relay``) when a test runs a round.

The module's case is a complaint of team complaints for its own customer, whose name is hostile
HTML: whatever a template renders from it, or an agent types, must never run in the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from casestore import customers
from casestore.outbound.letters import find_font
from casestore.outbound.models import OutboundMessage
from casestore.outbound.sender import Sender, SenderConfig
from casestore.outbound.transports import SmtpConfig, SmtpTransport
from tests.casestore.outbound.relay import Relay, smtp_relay
from tests.web.conftest import People, Workbench, axe_violations, start_case
from tests.web.test_work_pages_http import HX, signed_in

pytestmark = pytest.mark.timeout(180)
REF = "CM-2026-000950"
HOSTILE_NAME = "Jo <img src=x onerror=alert(1)> Bloggs"
HOSTILE_TEXT = "Thanks.\n<script>alert('reply')</script><img src=x onerror=alert(2)>\n"


@pytest.fixture(scope="module", autouse=True)
def reply_case(workbench: Workbench) -> None:
    with workbench.rt.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C950", name=HOSTILE_NAME, email="jo@example.com",
                                  phone="+44 7700 900950", address="2 Low Road, Townsville", postcode="ZZ9 9ZZ")
    start_case(workbench, ref=REF, case_type="complaint", team="complaints", customer_id="C950",
               subject="late refund")


@pytest.fixture
def relay() -> Iterator[Relay]:
    with smtp_relay() as r:
        yield r


def run_sender(wb: Workbench, relay: Relay) -> Any:
    """One round of the product's sender against the test relay (as `casework serve` runs it)."""
    transports = {"email": SmtpTransport(SmtpConfig(host="127.0.0.1", port=relay.port, security="none",
                                                    timeout_s=10))}
    sender = Sender(sessions=wb.rt.sessions, blobs=wb.rt.blobs, transports=transports,
                    config=SenderConfig(letter_font=find_font("")))
    return sender.run_once()


def _key(html: str) -> str:
    found = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', html)
    assert found, "no idempotency key in the reply form"
    return found.group(1)


def _messages(wb: Workbench, **where: Any) -> list[OutboundMessage]:
    with wb.rt.read_sessions() as s:
        stmt = select(OutboundMessage).order_by(OutboundMessage.created_at)
        for name, value in where.items():
            stmt = stmt.where(getattr(OutboundMessage, name) == value)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


def _task_id(html: str) -> str:
    found = re.search(r'<option value="(\d+)">send response|<option value="(\d+)">acknowledge', html)
    assert found, "no open task offered in the reply form"
    return found.group(1) or found.group(2)


def test_preview_edit_and_send_go_through_the_outbox_once_on_a_double_submit(workbench: Workbench,
                                                                             relay: Relay) -> None:
    with signed_in(workbench, "alice") as (client, csrf):
        page = client.get(f"/cases/{REF}").text
        assert 'id="reply-form"' in page
        key, task_id = _key(page), _task_id(page)
        form = {"csrf_token": csrf, "channel": "email", "template": "acknowledgement", "idempotency_key": key,
                "task_id": task_id}
        preview = client.post(f"/cases/{REF}/reply/preview", data={**form, "step": "template"}, headers=HX)
        assert preview.status_code == 200, preview.text
        assert "jo@example.com" in preview.text and f"[{REF}]" in preview.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in preview.text and "<img src=x" not in preview.text
        edited = {**form, "subject": f"Your complaint [{REF}]", "text": "Dear Jo,\nwe have your complaint.\n"}
        first = client.post(f"/cases/{REF}/reply", data=edited)
        again = client.post(f"/cases/{REF}/reply", data=edited)  # a double click: the same form twice
        assert first.status_code == again.status_code == 303
        assert first.headers["location"].startswith(f"/cases/{REF}?done=reply_queued")
        [msg] = _messages(workbench, idempotency_key=f"api:alice:web:{key}")
        assert msg.state == "queued" and msg.body.startswith("Dear Jo,") and msg.task_id == int(task_id)
        assert 'data-delivery-state="queued"' in client.get(f"/cases/{REF}").text
        assert run_sender(workbench, relay).sent >= 1
        [mail] = [m for m in relay.messages() if m["Message-ID"] == msg.message_id]
        assert mail["To"] == "jo@example.com" and f"[{REF}]" in mail["Subject"]
        assert 'data-delivery-state="sent"' in client.get(f"/cases/{REF}").text


def test_another_team_and_a_form_without_its_token_are_refused(workbench: Workbench) -> None:
    with signed_in(workbench, "bob") as (client, csrf):  # team claims: as if the case did not exist
        data = {"csrf_token": csrf, "channel": "email", "template": "acknowledgement", "idempotency_key": "k1"}
        assert client.get(f"/cases/{REF}").status_code == 404
        assert client.post(f"/cases/{REF}/reply/preview", data={**data, "step": "template"}).status_code == 404
        assert client.post(f"/cases/{REF}/reply", data=data).status_code == 404
    with signed_in(workbench, "alice") as (client, _):
        del client.headers["X-CSRF-Token"]
        r = client.post(f"/cases/{REF}/reply", data={"channel": "email", "template": "acknowledgement",
                                                     "idempotency_key": "k2"})
        assert r.status_code == 403
    assert _messages(workbench, idempotency_key="api:bob:web:k1") == []
    assert _messages(workbench, idempotency_key="api:alice:web:k2") == []


def test_a_refused_address_shows_on_the_case_page_and_in_operations(workbench: Workbench, relay: Relay) -> None:
    relay.rcpt_answer = "550 5.1.1 <jo@example.com>: Recipient address rejected: User unknown"
    with signed_in(workbench, "alice") as (client, csrf):
        key = _key(client.get(f"/cases/{REF}").text)
        r = client.post(f"/cases/{REF}/reply", data={"csrf_token": csrf, "channel": "email",
                                                     "template": "request_for_information", "idempotency_key": key})
        assert r.status_code == 303, r.text
        assert run_sender(workbench, relay).failed == 1
        [msg] = _messages(workbench, idempotency_key=f"api:alice:web:{key}")
        assert msg.state == "failed"
        page = client.get(f"/cases/{REF}").text
        assert "Messages that need you" in page and "User unknown" in page
        ops = client.get("/ops").text
        assert f"outbound-{msg.id}" in ops and "User unknown" in ops
        again = client.post(f"/cases/{REF}/reply", data={"csrf_token": csrf, "channel": "email",
                                                         "template": "acknowledgement",
                                                         "idempotency_key": _key(page)})
        assert again.status_code == 422 and "flagged" in again.text  # the flagged address, said in place
        retried = client.post(f"/outbox/{msg.id}/retry", data={"csrf_token": csrf, "back": "ops"})
        assert retried.status_code == 303 and retried.headers["location"].startswith("/ops?done=outbound_retried")
    assert _messages(workbench, id=msg.id)[0].state == "queued"
    with signed_in(workbench, "bob") as (client, csrf):  # another team sees none of it
        assert f"outbound-{msg.id}" not in client.get("/ops").text
        assert client.post(f"/outbox/{msg.id}/retry", data={"csrf_token": csrf}).status_code == 404
    with workbench.rt.sessions() as s, s.begin():  # tidy: the other tests reply to Jo again
        from casestore.outbound.services import unflag_address

        unflag_address(s, address_key="email:jo@example.com", actor="test")


def test_the_mailroom_prints_and_posts_a_letter(workbench: Workbench, relay: Relay) -> None:
    with signed_in(workbench, "alice") as (client, csrf):
        key = _key(client.get(f"/cases/{REF}").text)
        preview = client.post(f"/cases/{REF}/reply/preview", headers=HX, data={
            "csrf_token": csrf, "channel": "letter", "template": "outcome", "idempotency_key": key,
            "step": "template"})
        assert preview.status_code == 200 and "2 Low Road" in preview.text and "ZZ9 9ZZ" in preview.text
        r = client.post(f"/cases/{REF}/reply", data={"csrf_token": csrf, "channel": "letter", "template": "outcome",
                                                     "idempotency_key": key})
        assert r.status_code == 303, r.text
        assert run_sender(workbench, relay).letters == 1
        [letter] = _messages(workbench, idempotency_key=f"api:alice:web:{key}")
        mailroom = client.get("/mailroom").text
        assert f"letter-{letter.id}" in mailroom
        pdf = client.get(f"/api/v1/letters/{letter.id}/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        for action in ("printed", "posted"):
            done = client.post(f"/mailroom/{letter.id}/{action}", data={"csrf_token": csrf})
            assert done.status_code == 303 and done.headers["location"] == f"/mailroom?done=letter_{action}"
        assert _messages(workbench, id=letter.id)[0].state == "posted"
        assert f"letter-{letter.id}" not in client.get("/mailroom").text
        assert 'data-delivery-state="posted"' in client.get(f"/cases/{REF}").text
    with signed_in(workbench, "bob") as (client, _):
        assert client.get(f"/api/v1/letters/{letter.id}/pdf").status_code == 404


def test_in_the_browser_hostile_text_never_runs_and_the_keyboard_sends(people: People,
                                                                       workbench: Workbench) -> None:
    page = people.page("alice")
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"/cases/{REF}")
    page.get_by_label("Email", exact=True).check()
    page.get_by_label("Template", exact=True).select_option("acknowledgement")
    page.get_by_role("button", name="Preview the template").click()
    page.locator("#reply-preview").wait_for()  # htmx swapped the panel in place
    text = page.get_by_label(re.compile("^Text"))
    assert HOSTILE_NAME in text.input_value()  # rendered by the sandbox, shown as text
    assert page.locator("#reply-to").inner_text() == "jo@example.com"
    text.fill(HOSTILE_TEXT)
    page.get_by_role("button", name="Check my text").click()
    page.wait_for_function("() => document.querySelector('#reply-text').value.includes('alert(2)')")
    assert page.locator("#reply script, #reply img").count() == 0
    assert axe_violations(page) == []
    page.locator("#reply-send").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*done=reply_queued.*"))
    assert page.locator("p.notice[role=status]").inner_text().startswith("Your reply is queued")
    sent = [m for m in _messages(workbench, channel="email", created_by="alice") if "alert(2)" in m.body]
    assert len(sent) == 1 and sent[0].state == "queued"
    page.goto("/mailroom")
    assert axe_violations(page) == []
    assert dialogs == [] and not [e for e in errors if "Content Security Policy" not in e]
    page.close()
