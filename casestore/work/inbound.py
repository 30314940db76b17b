"""Inbound correspondence drives the work: what the file stage calls inside its transaction.

* ``on_new_case``: a case opened by a document starts the case type its document type maps to
  (``mapping.yaml``; an unknown document type gets the mapping's default, ``general``).
* ``on_attached``: an item filed into an existing case is a customer reply.  Clocks paused for
  the customer resume (the status leaves ``awaiting_customer`` for the type's
  ``on_customer_reply.status``), clocks that start or stop on ``customer_replied`` do, the type's
  review task is enabled (a new iteration if it ran before) in the stage the case is in (which
  then waits for it) and put in front of the case's assignee (assigned to them) or in its
  queue, and the urgency is raised if the type says so.
  An item for a closed case reopens it within the type's ``reopen_window`` (working time since
  it closed); after that, the item opens a new case, linked to the old one by an audit event on
  each.  A case with no work yet (opened before case work existed) starts its work first.
* ``start_imported``: ``casework import cases`` gives each imported case its work: the first
  stage of its type (or the stage the import names) with no task done.

Definitions and calendars come in a ``WorkSetup`` (``casestore.work.setup``), built once per
process, so filing an item reads no YAML; the running case's own version is read (and parsed
once) from the store.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import audit
from casestore.cases import find_case, open_case
from casestore.models import AuditEvent, Case, utcnow
from casestore.work import engine, overrides
from casestore.work.actor import SYSTEM, Actor
from casestore.work.calendar import parse_duration, working_time_between
from casestore.work.flow import Run
from casestore.work.models import CaseWork
from casestore.work.setup import WorkSetup

log = logging.getLogger(__name__)

_AWAITING_CUSTOMER = "awaiting_customer"


def on_new_case(session: Session, *, case: Case, doc_type: str | None, setup: WorkSetup, channel: str | None = None,
                actor: Actor = SYSTEM, now: datetime | None = None) -> CaseWork:
    """Start the work of a case just opened by a document of ``doc_type``."""
    case_type = setup.type_for_doc(doc_type)
    return engine.start_case(session, case=case, case_type=case_type, actor=actor, calendars=setup.calendars,
                             now=now or utcnow(), facts={"doc_type": doc_type, "channel": channel})


def on_attached(session: Session, *, case: Case, item_id: str, setup: WorkSetup, doc_type: str | None = None,
                channel: str | None = None, actor: Actor = SYSTEM, now: datetime | None = None) -> tuple[Case, bool]:
    """An item filed into ``case`` (see the module docstring); returns the case the item belongs
    in (``case``, or a case linked to it when ``case`` closed longer ago than its reopen window)
    and whether that case was opened for this item."""
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
    return case, False


def start_work_for(session: Session, *, case: Case, setup: WorkSetup, actor: Actor = SYSTEM,
                   now: datetime | None = None, stage: str | None = None) -> CaseWork:
    """Give a case without work (imported, or opened before case work) its type's work, at the
    first stage or ``stage``, with no task done; a closed case stays closed."""
    fine = "closed" if case.status == "closed" else "pending" if case.status == "pending" else "open"
    return engine.start_case(session, case=case, case_type=setup.type_for_case(case), actor=actor,
                             calendars=setup.calendars, now=now or utcnow(), stage=stage, status=fine)


def start_imported(session: Session, *, case: Case, setup: WorkSetup, stage: str | None = None,
                   now: datetime | None = None) -> CaseWork | None:
    """``casework import cases``: a case gets its work once; a re-import leaves running work (and
    its stage) alone: supervisors move work, imports do not."""
    if session.get(CaseWork, case.id) is not None:
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
    stage = run.work.stage or run.ct.stage_of(name).name  # reviewed in the stage the case is in
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


def _linked_open_case(session: Session, old: Case) -> Case | None:
    """The newest case opened for correspondence on ``old`` that is still open, if any."""
    rows = session.scalars(select(AuditEvent.details).where(AuditEvent.case_id == old.id,
                                                            AuditEvent.action == "case.linked")
                           .order_by(AuditEvent.id.desc()))
    for details in rows:
        ref = (details or {}).get("to")
        case = find_case(session, ref=ref) if ref else None
        if case is not None and case.status != "closed":
            return case
    return None


def _open_linked(session: Session, *, old: Case, item_id: str, doc_type: str | None, channel: str | None,
                 setup: WorkSetup, actor: Actor, now: datetime) -> tuple[Case, bool]:
    """The item goes to the open case linked to ``old`` (a reply to it), or opens one."""
    existing = _linked_open_case(session, old)
    if existing is not None:
        return on_attached(session, case=existing, item_id=item_id, setup=setup, doc_type=doc_type, channel=channel,
                           actor=actor, now=now)
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
    return new, True


class InboundWork:
    """The file stage's work hooks (``casestore.items.WorkHooks``) over one ``WorkSetup``."""

    def __init__(self, setup: WorkSetup, *, actor: Actor = SYSTEM) -> None:
        self.setup = setup
        self.actor = actor

    def new_case(self, session: Session, *, case: Case, item_id: str, doc_type: str, channel: str) -> None:
        on_new_case(session, case=case, doc_type=doc_type, channel=channel, setup=self.setup, actor=self.actor)

    def attached(self, session: Session, *, case: Case, item_id: str, doc_type: str,
                 channel: str) -> tuple[Case, bool]:
        return on_attached(session, case=case, item_id=item_id, setup=self.setup, doc_type=doc_type,
                           channel=channel, actor=self.actor)
