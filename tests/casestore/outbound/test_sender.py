"""The sender against real servers: an aiosmtpd relay, a local stand-in for Twilio's REST API, the
blob store and a Tantivy index; real SQLite and PostgreSQL.  Time is the sender's injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from casestore.errors import InvalidInput
from casestore.models import AuditEvent, Document, Item
from casestore.outbound import operations, outbox, services
from casestore.outbound.letters import WINDOW
from casestore.outbound.models import FlaggedAddress, OutboundMessage
from casestore.outbound.sender import Sender, SenderConfig
from casestore.outbound.transports import (
    ClaimLost,
    SmtpConfig,
    SmtpTransport,
    Transport,
    TwilioConfig,
    TwilioTransport,
)
from casestore.search.outbox import OutboxDrainer
from casestore.search.port import SearchQuery, Viewer
from casestore.search.tantivy_index import TantivyIndex
from ingest.blobs import FileBlobStore
from tests.casestore.outbound.relay import Relay, smtp_relay
from tests.casestore.outbound.world import FIRST_MAIL_ID, JANE_EMAIL, JANE_REF, POLICY, TEMPLATES, build
from tests.connectors.conftest import free_port
from tests.connectors.standin import stand_in

SID, TOKEN = "AC" + "2" * 32, "twilio-token"
AHEAD = timedelta(minutes=5)  # the senders' clock runs this far ahead of anything a test queues
MM = 72 / 25.4


class Clock:
    """The senders' clock, ``AHEAD`` of the wall clock when the test started.  Never a module-level
    constant: taken at import (collection), it fell behind the wall clock whenever the tests
    before these ran longer than ``AHEAD`` (the full suite), and the sender found nothing due."""

    def __init__(self, t0: datetime) -> None:
        self.now = t0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def t0() -> datetime:
    return datetime.now(UTC) + AHEAD


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as s, s.begin():
        build(s)
    return sessions


@pytest.fixture
def relay() -> Iterator[Relay]:
    with smtp_relay() as r:
        yield r


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def queue(sessions: sessionmaker[Session], **kw: object) -> str:
    args: dict[str, object] = dict(case_ref=JANE_REF, channel="email", actor="alice", policy=POLICY,
                                   templates=TEMPLATES, template="acknowledgement")
    args.update(kw)
    with sessions() as s, s.begin():
        return services.queue_message(s, **args).id  # type: ignore[arg-type]


def message(sessions: sessionmaker[Session], outbound_id: str) -> OutboundMessage:
    with sessions() as s:
        msg = s.get(OutboundMessage, outbound_id)
        assert msg is not None
        return msg


def sender(sessions: sessionmaker[Session], blobs: FileBlobStore, *, relay: Relay | None = None,
           port: int | None = None, clock: Clock | None = None, twilio_url: str = "",
           **config: object) -> Sender:
    """A sender whose clock is ``AHEAD`` of now unless ``clock`` is given."""
    transports: dict[str, Transport] = {
        "email": SmtpTransport(SmtpConfig(host="127.0.0.1", port=relay.port if relay else (port or 1),
                                          security="none", timeout_s=10)),
        "sms": TwilioTransport(TwilioConfig(account_sid=SID, auth_token=TOKEN, from_number="+441234567890",
                                            api_base_url=twilio_url,
                                            status_callback_url="https://cw.example/webhooks/twilio/status")),
    }
    cfg = SenderConfig(**{"backoff_initial_s": 60.0, "claim_lease_s": 120.0, **config})  # type: ignore[arg-type]
    return Sender(sessions=sessions, blobs=blobs, transports=transports, config=cfg,
                  clock=clock or Clock(datetime.now(UTC) + AHEAD))


def audit_actions(sessions: sessionmaker[Session], outbound_id: str) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.item_id == outbound_id)
                              .order_by(AuditEvent.id)))


def test_an_email_reaches_the_relay_threaded_and_what_went_is_filed_and_indexed(
        store: sessionmaker[Session], relay: Relay, blobs: FileBlobStore, tmp_path: Path) -> None:
    with store() as s, s.begin():  # attach the customer's own scan back to her
        document = s.scalars(select(Document).where(Document.part_index == 1)).one()
        document.blob_sha256 = blobs.put(b"%PDF-1.4 the customer's scan").sha256
        attach = document.id
    outbound_id = queue(store, attachments=[attach])
    index = TantivyIndex(tmp_path / "index", heap_bytes=50_000_000, threads=1)
    try:
        report = sender(store, blobs, relay=relay).run_once()
        assert (report.claimed, report.sent) == (1, 1)
        [mail] = relay.messages()
        msg = message(store, outbound_id)
        assert msg.state == "sent" and msg.provider_id == "Q1" and msg.attempts == 1
        assert mail["Message-ID"] == msg.message_id and mail["In-Reply-To"] == FIRST_MAIL_ID
        assert mail["References"] == FIRST_MAIL_ID and mail["To"] == JANE_EMAIL
        assert mail["From"] == "Complaints <complaints@cases.example>" and f"[{JANE_REF}]" in mail["Subject"]
        assert mail["Auto-Submitted"] is None  # a person wrote it
        assert "Dear Jane Doe" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        [att] = list(mail.iter_attachments())
        assert att.get_filename() == "scan1.pdf" and att.get_content() == b"%PDF-1.4 the customer's scan"
        with store() as s:
            item = s.get(Item, outbound_id)
            assert item is not None and item.delivery_state == "sent" and item.content_type == "message/rfc822"
            with blobs.open(item.blob_sha256 or "") as fh:
                assert f"Message-ID: {msg.message_id}".encode() in fh.read()
        assert audit_actions(store, outbound_id) == ["outbound.queued", "outbound.sent"]
        # search has it from its queueing: the outbox row written with it (what `casework serve` drains)
        assert OutboxDrainer(store, index).drain().documents == 1
        hits = index.search(SearchQuery(text="opened case", channels=("email",)), Viewer(role="admin")).hits
        assert [h.item_id for h in hits] == [outbound_id]
    finally:
        index.close()


def test_a_relay_that_is_down_is_retried_with_backoff_then_the_message_fails(
        store: sessionmaker[Session], blobs: FileBlobStore, t0: datetime) -> None:
    outbound_id = queue(store)
    clock = Clock(t0)
    down = sender(store, blobs, port=free_port(), clock=clock, max_attempts=2)
    assert down.run_once().retried == 1
    msg = message(store, outbound_id)
    assert msg.state == "queued" and msg.attempts == 1 and "cannot reach the relay" in (msg.last_error or "")
    assert msg.next_attempt_at == t0 + timedelta(seconds=60)
    clock.now = t0 + timedelta(seconds=59)
    assert down.run_once().claimed == 0  # not due yet
    clock.now = t0 + timedelta(seconds=61)
    assert down.run_once().failed == 1
    msg = message(store, outbound_id)
    assert msg.state == "failed" and "gave up after 2 attempts" in (msg.last_error or "")
    assert audit_actions(store, outbound_id)[-1] == "outbound.failed"


def test_a_refused_recipient_fails_at_once_and_flags_the_address(
        store: sessionmaker[Session], relay: Relay, blobs: FileBlobStore) -> None:
    relay.rcpt_answer = "550 5.1.1 <jane@example.com>: Recipient address rejected: User unknown"
    outbound_id = queue(store)
    assert sender(store, blobs, relay=relay).run_once().failed == 1
    assert message(store, outbound_id).state == "failed" and relay.count() == 0
    with store() as s:
        flag = s.get(FlaggedAddress, f"email:{JANE_EMAIL}")
        assert flag is not None and "User unknown" in flag.reason


def test_a_sender_stopped_mid_send_is_taken_over_once_and_never_resent_past_the_point_of_no_return(
        store: sessionmaker[Session], relay: Relay, blobs: FileBlobStore, t0: datetime) -> None:
    before, after = queue(store), queue(store, template="outcome")
    with store() as s, s.begin():  # a sender claimed both; it marked one committing, then died
        claimed = {c.id: c for c in outbox.claim_due(s, now=t0, limit=10, lease_s=120)}
    with store() as s, s.begin():
        assert outbox.mark_committing(s, outbound_id=after, token=claimed[after].token)
    clock = Clock(t0)
    second = sender(store, blobs, relay=relay, clock=clock)
    assert second.run_once().claimed == 0  # the lease still holds
    clock.now = t0 + timedelta(seconds=121)
    report = second.run_once()
    assert (report.requeued_stale, report.sent) == (1, 1)
    assert message(store, before).state == "sent" and relay.count() == 1
    stuck = message(store, after)
    assert stuck.state == "unconfirmed" and "casework outbox confirm" in (stuck.last_error or "")
    clock.now += timedelta(hours=1)
    assert second.run_once().claimed == 0 and relay.count() == 1  # never re-sent by itself
    with store() as s, s.begin():  # the dead sender's claim is gone: it can no longer finish
        assert not outbox.record_sent(s, outbound_id=after, token=claimed[after].token, provider_id="x", now=t0)
    with store() as s, s.begin():  # a person checked the relay's log: it did not go
        operations.retry_message(s, outbound_id=after, actor="operator", reason="not in the relay log")
    assert second.run_once().sent == 1 and relay.count() == 2
    assert "outbound.unconfirmed" in audit_actions(store, after)


def test_a_sender_whose_claim_was_taken_over_does_not_end_the_message(
        store: sessionmaker[Session], relay: Relay, blobs: FileBlobStore, t0: datetime) -> None:
    outbound_id = queue(store)
    with store() as s, s.begin():
        [slow] = outbox.claim_due(s, now=t0, limit=10, lease_s=1)
    with store() as s, s.begin():
        outbox.reconcile(s, now=t0 + timedelta(seconds=2))  # its lease ran out; the row is queued again
    transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=relay.port, security="none"))

    def point_of_no_return() -> bool:
        with store() as s, s.begin():
            return outbox.mark_committing(s, outbound_id=outbound_id, token=slow.token)

    with pytest.raises(ClaimLost):
        transport.send(slow, b"Subject: x\r\n\r\nbody\r\n", point_of_no_return=point_of_no_return)
    assert relay.count() == 0  # the connection closed before the final dot: the relay keeps nothing
    clock = Clock(t0)
    clock.now = t0 + timedelta(seconds=3)
    assert sender(store, blobs, relay=relay, clock=clock).run_once().sent == 1 and relay.count() == 1


def twilio_reply(sid: str) -> bytes:
    return json.dumps({"sid": sid, "status": "queued", "to": "+447700900123", "num_segments": "1",
                       "body": "x", "account_sid": SID}).encode()


def test_an_sms_goes_through_twilio_and_its_status_callbacks_move_it_on(
        store: sessionmaker[Session], blobs: FileBlobStore) -> None:
    outbound_id = queue(store, channel="sms", template="request_for_information",
                        fields={"requested": "a photo of the meter"})
    path = f"/2010-04-01/Accounts/{SID}/Messages.json"
    with stand_in({("POST", path): (201, "application/json", twilio_reply("SM" + "f" * 32))}) as api:
        assert sender(store, blobs, twilio_url=api.url).run_once().sent == 1
        [req] = api.requests
    form = parse_qs(req.body.decode())
    assert form["To"] == ["+447700900123"] and form["From"] == ["+441234567890"]
    assert "a photo of the meter" in form["Body"][0] and JANE_REF in form["Body"][0]
    callback = urlsplit(form["StatusCallback"][0])
    assert callback.path == "/webhooks/twilio/status" and parse_qs(callback.query) == {"outbound": [outbound_id]}
    msg = message(store, outbound_id)
    assert (msg.state, msg.provider_id, msg.segments) == ("sent", "SM" + "f" * 32, 1)
    with store() as s, s.begin():
        assert operations.record_sms_status(s, message_sid="SM" + "f" * 32, status="delivered") == "delivered"
        assert operations.record_sms_status(s, message_sid="SM" + "f" * 32, status="sent") == "delivered"  # late
        assert operations.record_sms_status(s, message_sid="SM" + "0" * 32, status="delivered") is None  # not ours
    assert message(store, outbound_id).delivered_at is not None
    assert audit_actions(store, outbound_id)[-1] == "outbound.delivered"


def test_twilio_refusing_a_number_fails_the_sms_and_flags_it_and_a_callback_settles_an_uncertain_one(
        store: sessionmaker[Session], blobs: FileBlobStore, t0: datetime) -> None:
    refused = json.dumps({"code": 21211, "message": "The 'To' number is not a valid phone number.",
                          "status": 400}).encode()
    path = f"/2010-04-01/Accounts/{SID}/Messages.json"
    first = queue(store, channel="sms")
    with stand_in({("POST", path): (400, "application/json", refused)}) as api:
        assert sender(store, blobs, twilio_url=api.url).run_once().failed == 1
    assert message(store, first).state == "failed"
    with store() as s:
        assert s.get(FlaggedAddress, "sms:+447700900123") is not None
        s.delete(s.get(FlaggedAddress, "sms:+447700900123"))
        s.commit()
    second = queue(store, channel="sms")
    with store() as s, s.begin():
        [claim] = outbox.claim_due(s, now=t0, limit=1, lease_s=1)
        outbox.mark_committing(s, outbound_id=second, token=claim.token)
        outbox.reconcile(s, now=t0 + timedelta(seconds=5))  # the sender died after the POST
    assert message(store, second).state == "unconfirmed"
    with store() as s, s.begin():  # Twilio's callback carries our id: the SMS did go
        assert operations.record_sms_status(s, message_sid="SM" + "1" * 32, status="delivered",
                                            outbound_id=second) == "delivered"
    assert message(store, second).provider_id == "SM" + "1" * 32


def test_a_letter_becomes_an_a4_pdf_with_the_address_in_the_window_for_the_mailroom(
        store: sessionmaker[Session], relay: Relay, blobs: FileBlobStore) -> None:
    outbound_id = queue(store, channel="letter", template="outcome", fields={"decision": "We uphold it."})
    assert sender(store, blobs, relay=relay).run_once().letters == 1
    with store() as s:
        [letter] = operations.list_letters(s)
        assert letter.id == outbound_id and letter.state == "to_print"
        sha = operations.letter_pdf(s, outbound_id=outbound_id)
    with blobs.open(sha) as fh:
        pdf = pdfium.PdfDocument(fh.read())
    page = pdf[0]
    width, height = page.get_size()
    assert (round(width / MM), round(height / MM)) == (210, 297)
    x, y, w, h = WINDOW
    in_window = page.get_textpage().get_text_bounded(left=x * MM, bottom=height - (y + h) * MM, right=(x + w) * MM,
                                                     top=height - y * MM)
    assert [line.strip() for line in in_window.splitlines()] == [
        "Example Ltd, PO Box 1", "Jane Doe", "1 High Street", "Townsville", "AB1 2CD"]
    everything = page.get_textpage().get_text_range()
    assert "ombudsman" in everything and "We uphold it." in everything and JANE_REF in everything
    with store() as s, s.begin():
        operations.mark_letter(s, outbound_id=outbound_id, action="printed", actor="mailroom")
        operations.mark_letter(s, outbound_id=outbound_id, action="posted", actor="mailroom")
        operations.mark_letter(s, outbound_id=outbound_id, action="posted", actor="mailroom")  # twice: no-op
        assert operations.list_letters(s) == []
        assert [v.id for v in operations.list_letters(s, states=["posted"])] == [outbound_id]
    email = queue(store)
    with store() as s, s.begin(), pytest.raises(InvalidInput, match="not a letter"):
        operations.mark_letter(s, outbound_id=email, action="printed", actor="mailroom")
    assert audit_actions(store, outbound_id) == ["outbound.queued", "letter.ready", "letter.printed", "letter.posted"]
    assert message(store, outbound_id).posted_at is not None and relay.count() == 0
