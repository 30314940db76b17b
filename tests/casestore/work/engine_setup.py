"""Builders for the engine tests: small case types registered as stored versions, a 24x7
calendar, users and actors, and a claim through the real queue service."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore import cases, customers, users
from casestore.models import AuditEvent, Case
from casestore.work import engine, queues
from casestore.work.actor import SYSTEM, Actor
from casestore.work.calendar import BusinessCalendar
from casestore.work.definitions import CaseType
from casestore.work.inbound import InboundWork
from casestore.work.models import CaseTypeVersion, CaseWork, SlaClock, WorkTask
from casestore.work.setup import WorkSetup

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
ALWAYS = BusinessCalendar(name="default", timezone="UTC", hours={d: ((time(0), time(0)),) for d in range(7)})
CALS = {"default": ALWAYS}

AGENT_ACTIONS = ["work_task", "add_note", "set_status", "close_case"]
SUPERVISOR_ACTIONS = [*AGENT_ACTIONS, "reassign", "redirect", "skip_stage", "reopen_stage", "waive_item",
                      "pause_clock", "change_clock", "reopen_case", "raise_urgency"]
ALICE = Actor(name="alice", role="agent", teams=("complaints",))
BOB = Actor(name="bob", role="agent", teams=("complaints",))
SUE = Actor(name="sue", role="supervisor")
EVE = Actor(name="eve", role="agent", teams=("claims",))  # another team: may not see complaints cases


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "queue": fields.pop("queue", "complaints"), "codes": fields.pop("codes", ["done"]),
            **fields}


def case_type(stages: list[dict[str, Any]] | None = None, *, name: str = "complaint", version: int = 1,
              **fields: Any) -> CaseType:
    """A case type: by default one stage ``handle`` with one task ``work``."""
    value: dict[str, Any] = {
        "name": name, "version": version,
        "roles": {"agent": AGENT_ACTIONS, "supervisor": SUPERVISOR_ACTIONS},
        "queues": [{"name": "complaints", "team": "complaints"}, {"name": "seniors", "team": "seniors"}],
        "stages": stages or [{"name": "handle", "tasks": [task("work")]}],
        "completion_codes": ["resolved", "withdrawn"],
        **fields,
    }
    return CaseType.model_validate(value)


def register(session: Session, ct: CaseType) -> CaseType:
    value = ct.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    session.add(CaseTypeVersion(name=ct.name, version=ct.version, digest=digest, definition=value,
                                source=f"{ct.name}.yaml", loaded_at=T0))
    session.flush()
    return ct


def people(session: Session) -> None:
    for actor in (ALICE, BOB, SUE, EVE):
        users.add_user(session, name=actor.name, role=actor.role, teams=list(actor.teams))


_n = iter(range(1, 10**9))


def new_case(session: Session, *, team: str | None = "complaints", subject: str = "noise") -> Case:
    case = Case(ref=f"W-{next(_n):06d}", case_type="complaint", status="open", subject=subject, team=team,
                restricted=False)
    session.add(case)
    session.flush()
    return case


def start(session: Session, ct: CaseType, *, now: datetime = T0, **kwargs: Any) -> Case:
    """A case of type ``ct`` (registered), started at ``now``."""
    register(session, ct)
    case = new_case(session, **kwargs)
    engine.start_case(session, case=case, case_type=ct, actor=SYSTEM, calendars=CALS, now=now)
    return case


def tasks(session: Session, case: Case, name: str | None = None) -> list[WorkTask]:
    stmt = select(WorkTask).where(WorkTask.case_id == case.id).order_by(WorkTask.id)
    if name is not None:
        stmt = stmt.where(WorkTask.name == name)
    return list(session.scalars(stmt))


def states(session: Session, case: Case) -> dict[str, str]:
    """Task name -> state of its last iteration."""
    return {t.name: t.state for t in tasks(session, case)}


def open_task(session: Session, case: Case, name: str) -> WorkTask:
    found = [t for t in tasks(session, case, name) if t.state in ("queued", "active")]
    assert len(found) == 1, f"{name}: {[(t.iteration, t.state) for t in tasks(session, case, name)]}"
    return found[0]


def claim(session: Session, case: Case, name: str, actor: Actor = ALICE, now: datetime = T0) -> WorkTask:
    return queues.claim(session, task_id=open_task(session, case, name).id, actor=actor, now=now)


def finish(session: Session, case: Case, name: str, code: str = "done", actor: Actor = ALICE,
           now: datetime = T0) -> WorkTask:
    """Claim the open task ``name`` and complete it with ``code``."""
    t = claim(session, case, name, actor, now)
    return engine.complete_task(session, task_id=t.id, code=code, actor=actor, calendars=CALS, now=now)


def work(session: Session, case: Case) -> CaseWork:
    found = session.get(CaseWork, case.id)
    assert found is not None
    session.refresh(found)
    return found


def clock(session: Session, case: Case, name: str) -> SlaClock:
    found = session.scalar(select(SlaClock).where(SlaClock.case_id == case.id, SlaClock.name == name))
    assert found is not None
    return found


def events(session: Session, case: Case, action: str | None = None) -> list[AuditEvent]:
    session.flush()
    stmt = select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.scalars(stmt))


def event_count(session: Session, case: Case) -> int:
    session.flush()
    return int(session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.case_id == case.id))
               or 0)


HOUR = timedelta(hours=1)


# a complaint type whose customer reply enables a repeatable ``review`` task (reopen window one day)
REPLY_COMPLAINT = case_type([{"name": "handle", "tasks": [task("assess"),
                                                          task("review", required=False, max_repeats=5)]}],
                            on_customer_reply={"review_task": "review"}, reopen_window="1d")
GENERAL = case_type([{"name": "handle", "tasks": [task("look")]}], name="general")


def inbound_work(session: Session) -> InboundWork:
    """What correspondence does to the work, as the file stage and triage resolution run it: Jane
    Doe's case CM-1 (complaints team, no work yet), ``REPLY_COMPLAINT`` and ``GENERAL`` registered,
    and complaint documents mapped to the complaint type."""
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    cases.upsert_case(session, ref="CM-1", customer_id="C1", case_type="complaint", opened_at=None, team="complaints")
    for ct in (REPLY_COMPLAINT, GENERAL):
        register(session, ct)
    return InboundWork(WorkSetup(case_types={"complaint": REPLY_COMPLAINT, "general": GENERAL},
                                 doc_types={"complaint": "complaint"}, calendars=CALS))
