"""Queueing a message from a case: the outbox row, the folder entry, the thread, the audit event,
and the rules (who may send, to whom, how often).  Real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import cases
from casestore.access import Principal
from casestore.errors import InvalidInput, NotFound
from casestore.lookup import StoreLookup
from casestore.models import AuditEvent, Document, Item
from casestore.outbound import operations, services
from casestore.outbound.errors import RateLimited, RecipientProblem
from casestore.outbound.models import OutboundMessage
from tests.casestore.outbound.world import FIRST_MAIL_ID, JANE_EMAIL, JANE_REF, POLICY, SAM_REF, TEMPLATES, build

ALICE = Principal(name="alice", role="agent", teams=("complaints",))
BOB = Principal(name="bob", role="agent", teams=("claims",))


@pytest.fixture
def world(session: Session) -> Session:
    build(session)
    return session


def queue(session: Session, **kw: object) -> services.QueuedMessage:
    args: dict[str, object] = dict(case_ref=JANE_REF, channel="email", actor="alice", policy=POLICY,
                                   templates=TEMPLATES, template="acknowledgement", viewer=ALICE)
    args.update(kw)
    return services.queue_message(session, **args)  # type: ignore[arg-type]


def test_an_email_reply_is_queued_in_the_folder_with_its_thread_and_audit_event(world: Session) -> None:
    q = queue(world)
    msg = world.get(OutboundMessage, q.id)
    assert msg is not None and msg.state == "queued" and q.item_id == q.id and msg.recipient == JANE_EMAIL
    assert msg.message_id == f"<{q.id}@cases.example>"
    assert msg.in_reply_to == FIRST_MAIL_ID and msg.thread_ids == [FIRST_MAIL_ID]
    assert msg.subject.endswith(f"[{JANE_REF}]") and "noise at night" in msg.subject
    assert "Dear Jane Doe" in msg.body and "alice" in msg.body and "Example Ltd" in msg.body
    folder = cases.case_folder(world, ref=JANE_REF)
    [out] = [d for d in folder["documents"] if d["direction"] == "out"]
    assert out["item_id"] == q.id and out["delivery_state"] == "queued" and out["sender"] == "alice"
    assert out["channel"] == "email" and out["title"] == msg.subject
    assert {d["direction"] for d in folder["documents"]} == {"in", "out"}
    [event] = [a for a in folder["audit"] if a["action"] == "outbound.queued"]
    assert event["item_id"] == q.id and event["details"]["to"] == JANE_EMAIL
    lookup = StoreLookup(world)  # the customer's reply threads back through the matcher's look-up
    assert lookup.case_by_message_id(msg.message_id or "") is not None
    assert lookup.case_by_message_id(msg.message_id or "").ref == JANE_REF  # type: ignore[union-attr]
    assert "alice" not in lookup.case_senders(JANE_REF) and JANE_EMAIL in lookup.case_senders(JANE_REF)


def test_sending_needs_the_case_to_be_visible_to_the_sender(world: Session) -> None:
    with pytest.raises(NotFound, match="not visible"):
        queue(world, viewer=BOB)
    with pytest.raises(NotFound):
        services.preview(world, case_ref=JANE_REF, channel="email", actor="bob", policy=POLICY, templates=TEMPLATES,
                         template="acknowledgement", viewer=BOB)
    assert world.scalars(select(OutboundMessage)).all() == []


def test_recipients_are_the_customer_or_someone_who_wrote_into_the_case(world: Session) -> None:
    with pytest.raises(InvalidInput, match="neither the customer's address"):
        queue(world, to="stranger@example.org")
    assert queue(world, to=f"Jane <{JANE_EMAIL.upper()}>").recipient == JANE_EMAIL
    with pytest.raises(RecipientProblem, match="not a mobile number"):
        queue(world, case_ref=SAM_REF, channel="sms", viewer=None)
    with pytest.raises(RecipientProblem, match="no postal address"):
        queue(world, case_ref=SAM_REF, channel="letter", viewer=None)
    lookup = StoreLookup(world)
    assert lookup.case_of_last_sms_to("+447700900123") is None
    sms = queue(world, channel="sms")
    assert sms.recipient == "+447700900123"
    assert lookup.case_of_last_sms_to("+447700900123").ref == JANE_REF  # type: ignore[union-attr]
    assert lookup.case_of_last_sms_to("+447700900999") is None  # the customer's answer threads by number
    assert world.get(OutboundMessage, sms.id).segments == 1  # type: ignore[union-attr]
    letter = world.get(OutboundMessage, queue(world, channel="letter").id)
    assert letter is not None and letter.postal_address == "Jane Doe\n1 High Street\nTownsville\nAB1 2CD"


def test_attachments_come_from_the_case_folder_only(world: Session) -> None:
    docs = world.scalars(select(Document).order_by(Document.id)).all()
    body_part, scan = docs[0], docs[1]
    with pytest.raises(InvalidInput, match="no stored file"):
        queue(world, attachments=[body_part.id])
    with pytest.raises(NotFound, match="not in the folder"):
        queue(world, attachments=[999_999])
    with pytest.raises(InvalidInput, match="email only"):
        queue(world, channel="sms", attachments=[scan.id])
    msg = world.get(OutboundMessage, queue(world, attachments=[scan.id]).id)
    assert msg is not None and msg.attachments == [{"document_id": scan.id, "filename": "scan1.pdf",
                                                    "content_type": "application/pdf",
                                                    "blob_sha256": scan.blob_sha256}]


def test_a_daily_limit_per_recipient_stops_loops(world: Session) -> None:
    for _ in range(3):
        queue(world)
    with pytest.raises(RateLimited, match=r"3 messages went to jane@example\.com") as refused:
        queue(world)
    assert refused.value.http_status == 429
    held = queue(world, automatic=True)  # the system's own message does not fail its caller: it is held
    assert held.state == "held"
    msg = world.get(OutboundMessage, held.id)
    assert msg is not None and "limit" in (msg.last_error or "") and msg.message_id  # a retry threads too
    assert world.scalar(select(Item.delivery_state).where(Item.item_id == held.id)) == "held"
    assert operations.retry_message(world, outbound_id=held.id, actor="operator").state == "queued"  # a person
    _, problems = services.preview(world, case_ref=JANE_REF, channel="email", actor="alice", policy=POLICY,
                                   templates=TEMPLATES, template="acknowledgement")
    assert len(problems) == 1 and "limit is 3" in problems[0]
    assert len(queue(world, channel="sms").recipient) > 0  # another channel is another recipient


def test_a_bounced_address_is_flagged_until_a_person_clears_it(world: Session) -> None:
    first = queue(world)
    msg = world.get(OutboundMessage, first.id)
    assert msg is not None and msg.message_id
    assert services.record_bounce(world, message_id=msg.message_id.strip("<>"), item_id="bounce-1", actor="pipeline")
    assert services.record_bounce(world, message_id=msg.message_id, item_id="bounce-1", actor="pipeline")  # again
    assert msg.state == "bounced" and not services.record_bounce(world, message_id="<not-ours@x>", item_id="b",
                                                                  actor="pipeline")
    with pytest.raises(RecipientProblem, match=r"flagged since .*casework outbox unflag 'email:jane@example\.com'"):
        queue(world)
    actions = [e.action for e in world.scalars(select(AuditEvent).where(AuditEvent.item_id == first.id))]
    assert actions.count("outbound.bounced") == 1 and actions.count("outbound.address_flagged") == 1
    services.unflag_address(world, address_key="email:jane@example.com", actor="operator", reason="phoned her")
    assert queue(world).state == "queued"


def test_an_idempotency_key_queues_once(world: Session) -> None:
    a = queue(world, idempotency_key="task:7:outcome", template="outcome", channel="letter", viewer=None)
    b = queue(world, idempotency_key="task:7:outcome", template="outcome", channel="letter", viewer=None)
    assert (a.duplicate, b.duplicate) == (False, True) and a.id == b.id
    assert len(world.scalars(select(OutboundMessage)).all()) == 1


def test_the_agents_edited_text_is_what_goes(world: Session) -> None:
    msg = world.get(OutboundMessage, queue(world, body="Subject: About your noise complaint\n\nHello Jane,\n"
                                                        "we visited on Monday.\n").id)
    assert msg is not None and msg.subject == f"About your noise complaint [{JANE_REF}]"
    assert msg.body == "Hello Jane,\nwe visited on Monday.\n"
    with pytest.raises(InvalidInput, match="empty"):
        queue(world, channel="sms", body="   ")
