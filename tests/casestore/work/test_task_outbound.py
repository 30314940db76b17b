"""Tasks that send or require a message to the customer (``on_complete.send``,
``requires_outbound``), on SQLite and PostgreSQL: the outbox row is written in the completion's
own transaction (rolled back together, never twice), a task that needs a message cannot complete
without one, and the shipped complaint type uses both."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from casestore.cases import get_case
from casestore.errors import Conflict, InvalidInput
from casestore.models import AuditEvent, Case
from casestore.outbound import services
from casestore.outbound.models import OutboundMessage
from casestore.outbound.task_outbox import OutboxForTasks
from casestore.work import engine, queues
from casestore.work.actor import Actor
from casestore.work.definitions import CaseType
from casestore.work.loader import load_case_type_file
from casestore.work.models import WorkTask
from casestore.work.outbox_port import OutboxMissing
from casestore.work.problems import DefinitionError
from casestore.work.setup import FALLBACK_TYPE
from tests.casestore.outbound.world import JANE_REF, POLICY, SAM_REF, TEMPLATES, build
from tests.casestore.work.engine_setup import ALICE, CALS, SUE, T0, case_type, people, register, task

OUTBOX = OutboxForTasks(policy=POLICY, templates=TEMPLATES)
SHIPPED = Path(engine.__file__).resolve().parent / "shipped" / "case_types"


def _type() -> CaseType:
    return case_type([{"name": "handle", "tasks": [
        task("decide", codes=["upheld", "not_upheld", "withdrawn"], requires_outbound=True,
             on_complete=[{"code": "upheld", "send": {"template": "outcome", "channel": "letter",
                                                      "fields": {"decision": "We uphold your complaint."}}},
                          {"code": "not_upheld", "send": {"template": "outcome", "channel": "email"}}]),
    ]}, {"name": "after", "tasks": [task("file_away")]}])


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as s, s.begin():
        build(s)
        people(s)
        ct = register(s, _type())
        for ref in (JANE_REF, SAM_REF):
            engine.start_case(s, case=get_case(s, ref=ref), case_type=ct, actor=engine.SYSTEM, calendars=CALS, now=T0)
    return sessions


def _claimed(s: Session, ref: str, actor: Actor = ALICE) -> WorkTask:
    case = get_case(s, ref=ref)
    row = s.scalars(select(WorkTask).where(WorkTask.case_id == case.id, WorkTask.name == "decide")).one()
    return queues.claim(s, task_id=row.id, actor=actor, now=T0) if row.state == "queued" else row


def _messages(s: Session, case: Case | None = None) -> list[OutboundMessage]:
    stmt = select(OutboundMessage).order_by(OutboundMessage.created_at)
    if case is not None:
        stmt = stmt.where(OutboundMessage.case_id == case.id)
    return list(s.scalars(stmt))


def test_completing_with_a_sending_code_queues_its_message_in_the_same_transaction(
        store: sessionmaker[Session]) -> None:
    with store() as s, s.begin():
        task_id = _claimed(s, JANE_REF).id
    with pytest.raises(RuntimeError), store() as s, s.begin():  # the caller's transaction fails after it
        engine.complete_task(s, task_id=task_id, code="upheld", actor=ALICE, calendars=CALS, now=T0, outbox=OUTBOX)
        assert len(_messages(s)) == 1
        raise RuntimeError("the request failed after the completion")
    with store() as s:  # rolled back together: the task is still open and nothing waits to be sent
        assert s.get(WorkTask, task_id).state == "active" and _messages(s) == []  # type: ignore[union-attr]
    with store() as s, s.begin():
        engine.complete_task(s, task_id=task_id, code="upheld", actor=ALICE, calendars=CALS, now=T0, outbox=OUTBOX)
    with store() as s, s.begin(), pytest.raises(Conflict):  # completing again sends nothing more
        engine.complete_task(s, task_id=task_id, code="upheld", actor=ALICE, calendars=CALS, now=T0, outbox=OUTBOX)
    with store() as s:
        [msg] = _messages(s)
        assert (msg.channel, msg.template, msg.state, msg.task_id, msg.automatic) == (
            "letter", "outcome", "queued", task_id, True)
        assert "We uphold your complaint." in msg.body and msg.idempotency_key == f"task:{task_id}:upheld"
        assert "Jane Doe" in (msg.postal_address or "")
        case = get_case(s, ref=JANE_REF)
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)
                                 .order_by(AuditEvent.id)))
        assert actions.index("task.completed") < actions.index("outbound.queued")


def test_a_task_that_requires_a_message_waits_for_one_sent_for_it(store: sessionmaker[Session]) -> None:
    with store() as s, s.begin():
        task_id = _claimed(s, JANE_REF).id
    with store() as s, s.begin(), pytest.raises(InvalidInput, match="needs a message to the customer first"):
        engine.complete_task(s, task_id=task_id, code="withdrawn", actor=ALICE, calendars=CALS, now=T0,
                             outbox=OUTBOX)
    with store() as s, s.begin():  # a message of the case, but not for this task: does not count
        services.queue_message(s, case_ref=JANE_REF, channel="email", actor="alice", policy=POLICY,
                               templates=TEMPLATES, template="acknowledgement")
    with store() as s, s.begin(), pytest.raises(InvalidInput):
        engine.complete_task(s, task_id=task_id, code="withdrawn", actor=ALICE, calendars=CALS, now=T0,
                             outbox=OUTBOX)
    with store() as s, s.begin(), pytest.raises(InvalidInput, match="not a task of case"):
        services.queue_message(s, case_ref=SAM_REF, channel="email", actor="alice", policy=POLICY,
                               templates=TEMPLATES, template="acknowledgement", task_id=task_id)
    with store() as s, s.begin():
        services.queue_message(s, case_ref=JANE_REF, channel="email", actor="alice", policy=POLICY,
                               templates=TEMPLATES, template="acknowledgement", task_id=task_id)
    with store() as s, s.begin():
        done = engine.complete_task(s, task_id=task_id, code="withdrawn", actor=ALICE, calendars=CALS, now=T0,
                                    outbox=OUTBOX)
        assert done.state == "completed"
        assert len(_messages(s, get_case(s, ref=JANE_REF))) == 2  # withdrawn sends nothing itself


def test_a_message_that_cannot_go_is_held_for_a_person_and_the_task_still_completes(
        store: sessionmaker[Session]) -> None:
    with store() as s, s.begin():  # Sam has no postal address: the outcome letter cannot be made
        task_id = _claimed(s, SAM_REF, SUE).id  # a supervisor: any team, any queue
        engine.complete_task(s, task_id=task_id, code="upheld", actor=SUE, calendars=CALS, now=T0, outbox=OUTBOX)
    with store() as s:
        [msg] = _messages(s, get_case(s, ref=SAM_REF))
        assert msg.state == "held" and "no postal address" in (msg.last_error or "") and msg.task_id == task_id
        assert s.get(WorkTask, task_id).state == "completed"  # type: ignore[union-attr]
        assert OUTBOX.sent_for_task(s, task_id=task_id) == 0  # held: it did not go; a person acts on it


def test_without_an_outbox_the_completion_is_refused_and_nothing_is_lost(store: sessionmaker[Session]) -> None:
    with store() as s, s.begin():
        task_id = _claimed(s, JANE_REF).id
    with store() as s, s.begin(), pytest.raises(OutboxMissing):
        engine.complete_task(s, task_id=task_id, code="upheld", actor=ALICE, calendars=CALS, now=T0)
    with store() as s:
        assert s.get(WorkTask, task_id).state == "active" and _messages(s) == []  # type: ignore[union-attr]


def _write_type(tmp_path: Path, old: str, new: str) -> Path:
    text = (SHIPPED / f"{FALLBACK_TYPE}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{FALLBACK_TYPE}.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_definitions_check_on_complete_with_file_and_line(tmp_path: Path) -> None:
    review = "        codes: [answer, reclassify, no_action]\n"
    one = _write_type(tmp_path, review, review + "        on_complete: {code: answer, send: {template: outcome, "
                                             "channel: email}}\n        requires_outbound: true\n")
    loaded = load_case_type_file(one)  # one mapping, as well as a list
    sends = loaded.case_type.task("review").sends_on("answer")
    assert sends is not None and (sends.template, sends.channel) == ("outcome", "email")
    assert loaded.case_type.task("review").requires_outbound
    line = 1 + one.read_text().splitlines().index(review.rstrip("\n"))
    bad = _write_type(tmp_path, review, review + "        on_complete:\n          - code: answer\n"
                                                 "            send: {template: outcome, channel: email}\n"
                                                 "          - code: upheld\n"
                                                 "            send: {template: outcome, channel: fax}\n")
    with pytest.raises(DefinitionError) as caught:
        load_case_type_file(bad)
    text = str(caught.value)
    assert f"{bad}:{line + 5}" in text and "channel" in text  # fax: not a channel, at its line
    worse = _write_type(tmp_path, review, review + "        on_complete:\n          - code: upheld\n"
                                                   "            send: {template: outcome, channel: letter}\n")
    with pytest.raises(DefinitionError) as caught:
        load_case_type_file(worse)
    assert f"{worse}:{line + 2}" in str(caught.value) and "does not allow" in str(caught.value)


def test_the_shipped_complaint_sends_its_outcome_letter_and_needs_a_response(tmp_path: Path) -> None:
    ct = load_case_type_file(SHIPPED / "complaint.yaml").case_type
    respond = ct.task("send_response")
    assert respond.requires_outbound
    sends = respond.sends_on("outcome_letter")
    assert sends is not None and (sends.template, sends.channel) == ("outcome", "letter")
    assert respond.sends_on("final_response_sent") is None
