"""Inbound correspondence drives the work: what the file stage calls inside its transaction.

* ``on_new_case``: a case opened by a document starts the case type its document type maps to
  (``mapping.yaml``; an unknown document type gets the mapping's default, ``general``).
* ``on_attached``: an item filed into an existing case is a customer reply.  Clocks paused for
  the customer resume (the status leaves ``awaiting_customer`` for the type's
  ``on_customer_reply.status``), clocks that start or stop on ``customer_replied`` do, the type's
  review task is enabled (a new iteration if it ran before) and put in front of the case's
  assignee (assigned to them) or in its queue, and the urgency is raised if the type says so.
  An item for a closed case reopens it within the type's ``reopen_window`` (working time since
  it closed); after that, the item opens a new case, linked to the old one by an audit event on
  each.  A case with no work yet (opened before case work existed) starts its work first.
* ``start_imported``: ``casework import cases`` gives each imported case its work: the first
  stage of its type (or the stage the import names) with no task done.

Definitions and calendars come in a ``WorkSetup``, built once per process, so filing an item
reads no YAML; the running case's own version is read (and parsed once) from the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from casestore import audit
from casestore.cases import open_case
from casestore.errors import InvalidInput
from casestore.models import Case, utcnow
from casestore.work import clocks, engine, overrides
from casestore.work.actor import SYSTEM, Actor
from casestore.work.calendar import parse_duration, working_time_between
from casestore.work.definitions import CaseType
from casestore.work.flow import Run
from casestore.work.models import CaseWork

log = logging.getLogger(__name__)

FALLBACK_TYPE = "general"
_AWAITING_CUSTOMER = "awaiting_customer"


@dataclass(frozen=True)
class WorkSetup:
    """The configuration the work domain runs on, loaded once per process: the current version of
    each case type (each stored in ``case_type_versions``), which case type a document type opens,
    and the calendars by name."""

    case_types: Mapping[str, CaseType]
    doc_types: Mapping[str, str]
    calendars: clocks.Calendars
    default_type: str = FALLBACK_TYPE

    def type_named(self, name: str | None) -> CaseType | None:
        return self.case_types.get(name or "")

    def type_for_doc(self, doc_type: str | None) -> CaseType:
        """The case type a new case opened by a document of ``doc_type`` gets."""
        name = self.doc_types.get(doc_type or "", self.default_type)
        found = self.case_types.get(name) or self.case_types.get(self.default_type)
        if found is None:
            raise InvalidInput(f"no case type {name!r} nor {self.default_type!r} is loaded; add "
                               f"{self.default_type}.yaml to the case-types folder")
        return found

    def type_for_case(self, case: Case) -> CaseType:
        """The type a case without work gets: its own ``case_type`` if that names a loaded type,
        else what its ``case_type`` maps to as a document type, else the default."""
        return self.type_named(case.case_type) or self.type_for_doc(case.case_type)


def on_new_case(session: Session, *, case: Case, doc_type: str | None, setup: WorkSetup, channel: str | None = None,
                actor: Actor = SYSTEM, now: datetime | None = None) -> CaseWork:
    """Start the work of a case just opened by a document of ``doc_type``."""
    case_type = setup.type_for_doc(doc_type)
    return engine.start_case(session, case=case, case_type=case_type, actor=actor, calendars=setup.calendars,
                             now=now or utcnow(), facts={"doc_type": doc_type, "channel": channel})


def on_attached(session: Session, *, case: Case, item_id: str, setup: WorkSetup, doc_type: str | None = None,
                channel: str | None = None, actor: Actor = SYSTEM, now: datetime | None = None) -> Case:
    """An item filed into ``case`` (see the module docstring); returns the case the item belongs
    in: ``case``, or a new case linked to it when ``case`` closed longer ago than its reopen window."""
    now = now or utcnow()
    if session.get(CaseWork, case.id) is None:
        start_work_for(session, case=case, setup=setup, actor=actor, now=now)
    run = Run.load(session, case=case, actor=actor, now=now, calendars=setup.calendars)
    if run.work.status == "closed":
        if not within_reopen_window(run):
            return _open_linked(session, old=case, item_id=item_id, doc_type=doc_type, channel=channel,
                                setup=setup, actor=actor, now=now)
        overrides.reopen(run, reason=f"new correspondence (item {item_id}) within the reopen window "
                                     f"({run.ct.reopen_window})", override=False)
    customer_replied(run, item_id=item_id)
    return case


def start_work_for(session: Session, *, case: Case, setup: WorkSetup, actor: Actor = SYSTEM,
                   now: datetime | None = None, stage: str | None = None) -> CaseWork:
    """Give a case without work (imported, or opened before case work) its type's work, at the
    first stage or ``stage``, with no task done; a closed case stays closed."""
    fine = "closed" if case.status == "closed" else "pending" if case.status == "pending" else "open"
    return engine.start_case(session, case=case, case_type=setup.type_for_case(case), actor=actor,
                             calendars=setup.calendars, now=now or utcnow(), stage=stage, status=fine)


def start_imported(session: Session, *, case: Case, setup: WorkSetup, stage: str | None = None,
                   now: datetime | None = None) -> CaseWork | None:
    """``casework import cases``: a case gets its work once (a re-import leaves running work alone,
    unless it names a ``stage`` the case is not in: InvalidInput, since the import cannot move work)."""
    work = session.get(CaseWork, case.id)
    if work is not None:
        if stage and stage != work.stage:
            raise InvalidInput(f"case {case.ref} is in stage {work.stage} already; a supervisor can skip or reopen "
                               "stages, an import cannot move it")
        return None
    return start_work_for(session, case=case, setup=setup, actor=Actor(name="import", role="system"), now=now,
                          stage=stage)


def within_reopen_window(run: Run) -> bool:
    closed_at = run.work.closed_at or run.case.updated_at
    calendar = run.calendar()
    return working_time_between(closed_at, run.now, calendar) <= parse_duration(run.ct.reopen_window, calendar)


def customer_replied(run: Run, *, item_id: str | None) -> None:
    """The ``customer_replied`` transition over a loaded run of an open case."""
    reply = run.ct.on_customer_reply
    run.event("customer.replied", item_id=item_id, details={"status": run.work.status})
    if reply.status is not None and run.work.status == _AWAITING_CUSTOMER:
        run.set_status(reply.status, reason="the customer replied")
    run.clock_event("customer_replied")
    if reply.review_task is not None:
        _review(run, reply.review_task)
    if reply.raise_urgency:
        before = run.work.urgency
        run.work.urgency = min(before + reply.raise_urgency, overrides.MAX_URGENCY)
        run.event("case.urgency_raised", reason="the customer replied", details={"before": before,
                                                                                "after": run.work.urgency})
    run.advance()
    run.finish()


def _review(run: Run, name: str) -> None:
    task = run.ct.task(name)
    stage = run.ct.stage_of(name).name
    latest = run.latest(name)
    if latest is not None and latest.state in ("queued", "active"):
        return  # a review is waiting already: it covers this reply too
    if run.runs(name) >= task.max_repeats:
        log.info("case %s: review task %s ran %d times, its limit; not enabled again", run.case.ref, name,
                 task.max_repeats)
        return
    owner = run.work.assignee
    if owner is not None and not run.user_can_take(owner):
        owner = None
    run.enable(task, stage, assign_to=owner, reason="the customer replied")


def _open_linked(session: Session, *, old: Case, item_id: str, doc_type: str | None, channel: str | None,
                 setup: WorkSetup, actor: Actor, now: datetime) -> Case:
    customer_id = old.customer.customer_id if old.customer is not None else None
    reason = f"correspondence for {old.ref}, closed longer ago than its reopen window"
    new = open_case(session, customer_id=customer_id, case_type=old.case_type, subject=old.subject, actor=actor.name,
                    reason=reason, team=old.team)
    audit.record(session, actor=actor.name, action="case.linked", reason=reason, case=old, item_id=item_id,
                 details={"to": new.ref}, at=now, flush=False)
    audit.record(session, actor=actor.name, action="case.linked", reason=reason, case=new, item_id=item_id,
                 details={"from": old.ref}, at=now, flush=False)
    old_type = session.get(CaseWork, old.id)
    case_type = setup.type_named(old_type.case_type if old_type else None) or setup.type_for_doc(doc_type)
    engine.start_case(session, case=new, case_type=case_type, actor=actor, calendars=setup.calendars, now=now,
                      facts={"doc_type": doc_type, "channel": channel})
    log.info("item %s for closed case %s opened linked case %s", item_id, old.ref, new.ref)
    return new
