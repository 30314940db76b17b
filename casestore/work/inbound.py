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
  it closed; a case closed outside casework counts from its opening); after that, the item
  opens a new case, linked to the old one by an audit event on each.  A case with no work yet
  (opened before case work existed) starts its work first.
* ``start_imported``: ``casework import cases`` gives each imported case its work: the first
  stage of its type (or the stage the import names) with no task done.

Definitions and calendars come in a ``WorkSetup`` (``casestore.work.setup``), built once per
process, so filing an item reads no YAML; the running case's own version is read (and parsed
once) from the store.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.cases import find_case, open_case
from casestore.items import IN_CHUNK
from casestore.models import AuditEvent, Case, utcnow
from casestore.validation import as_utc
from casestore.work import engine, overrides
from casestore.work.actor import SYSTEM, Actor
from casestore.work.calendar import parse_duration, working_time_between
from casestore.work.definitions import CaseType
from casestore.work.flow import Batch, Run
from casestore.work.models import CaseWork, SlaClock, WorkTask
from casestore.work.registry import get_definition
from casestore.work.setup import WorkSetup

log = logging.getLogger(__name__)

_AWAITING_CUSTOMER = "awaiting_customer"


class Runs:
    """The loaded work of cases within one transaction (the file stage's batch): each case is
    loaded once, in a few queries for the whole batch (``prefetch``), and later items of the
    same case see what earlier ones changed.  Cleared when the session's transaction changes."""

    def __init__(self, setup: WorkSetup, *, current: Callable[[], WorkSetup] | None = None) -> None:
        self.setup = setup
        self.current = current  # where a reloaded setup comes from; taken at each new transaction
        self._transaction: object | None = None
        self._runs: dict[int, Run] = {}
        self.batch = Batch()  # the new rows and audit events of every run of the batch, in order
        self.linked: dict[int, Case] = {}  # closed case -> the case opened for it in this batch

    def _valid(self, session: Session) -> dict[int, Run]:
        transaction = session.get_transaction()
        if transaction is not self._transaction:
            self._transaction, self._runs, self.batch, self.linked = transaction, {}, Batch(), {}
            if self.current is not None:  # a batch works with one setup from start to end
                self.setup = self.current()
        return self._runs

    def begin(self, session: Session) -> None:
        """Start a new batch if the session is in another transaction than the last one."""
        self._valid(session)

    def write(self, session: Session) -> None:
        """Write the batch's new rows and audit events."""
        self._valid(session)
        self.batch.write(session)

    def register(self, run: Run) -> None:
        """A run made in this batch (a case whose work started now)."""
        self._runs[run.case.id] = run

    def definition(self, session: Session, work: CaseWork) -> CaseType:
        """The case's own version: the loaded one when it is that (registered with this content at
        start-up, so no look-up), else the stored one."""
        current = self.setup.type_named(work.case_type)
        if current is not None and current.version == work.type_version:
            return current
        return get_definition(session, work.case_type, work.type_version)

    def get(self, session: Session, case: Case, *, actor: Actor, now: datetime) -> Run | None:
        """The case's run (None when the case has no work yet)."""
        runs = self._valid(session)
        run = runs.get(case.id)
        if run is None:
            work = session.get(CaseWork, case.id, with_for_update=True, populate_existing=True)
            if work is None:
                return None
            run = Run(session, case=case, work=work, case_type=self.definition(session, work), actor=actor, now=now,
                      calendars=self.setup.calendars, batch=self.batch, lock=True)
            runs[case.id] = run
        run.actor, run.now = actor, now
        return run

    def prefetch(self, session: Session, cases: Sequence[Case], *, actor: Actor, now: datetime) -> None:
        """Load the work, tasks and clocks of these cases in a few queries."""
        runs = self._valid(session)
        todo = {c.id: c for c in cases if c.id is not None and c.id not in runs}
        ids = sorted(todo)
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start:start + IN_CHUNK]
            fresh = {"populate_existing": True}  # locked (PostgreSQL) in the engine's order: work, tasks, clocks
            works = {w.case_id: w for w in session.scalars(
                select(CaseWork).where(CaseWork.case_id.in_(chunk)).order_by(CaseWork.case_id).with_for_update(),
                execution_options=fresh)}
            if not works:
                continue
            tasks: dict[int, list[WorkTask]] = defaultdict(list)
            for task in session.scalars(select(WorkTask).where(WorkTask.case_id.in_(list(works)))
                                        .order_by(WorkTask.id).with_for_update(), execution_options=fresh):
                tasks[task.case_id].append(task)
            clocks: dict[int, dict[str, SlaClock]] = defaultdict(dict)
            for clock in session.scalars(select(SlaClock).where(SlaClock.case_id.in_(list(works)))
                                         .order_by(SlaClock.id).with_for_update(), execution_options=fresh):
                clocks[clock.case_id][clock.name] = clock
            for case_id, work in works.items():
                run = Run(session, case=todo[case_id], work=work, case_type=self.definition(session, work),
                          actor=actor, now=now, calendars=self.setup.calendars, tasks=tasks[case_id],
                          batch=self.batch)
                run._clocks = clocks[case_id]
                runs[case_id] = run


def on_new_case(session: Session, *, case: Case, doc_type: str | None, setup: WorkSetup, channel: str | None = None,
                actor: Actor = SYSTEM, now: datetime | None = None, runs: Runs | None = None,
                case_type_name: str | None = None) -> CaseWork:
    """Start the work of a case just opened by a document of ``doc_type``: of the type
    ``case_type_name`` names when it is a loaded one (a person chose it in triage), else of the
    type ``doc_type`` maps to.  ``runs``: the batch's (its audit events are written with the
    batch's, and nothing is flushed here)."""
    case_type = setup.type_named(case_type_name) or setup.type_for_doc(doc_type)
    if runs is not None:
        runs.begin(session)
    run = engine.begin_case(session, case=case, case_type=case_type, actor=actor, calendars=setup.calendars,
                            now=now or utcnow(), facts={"doc_type": doc_type, "channel": channel}, opened_now=True,
                            batch=runs.batch if runs is not None else None)
    if runs is not None:
        runs.register(run)
    return run.work


def on_attached(session: Session, *, case: Case, item_id: str, setup: WorkSetup, doc_type: str | None = None,
                channel: str | None = None, actor: Actor = SYSTEM, now: datetime | None = None,
                runs: Runs | None = None) -> tuple[Case, bool]:
    """An item filed into ``case`` (see the module docstring); returns the case the item belongs
    in (``case``, or a case linked to it when ``case`` closed longer ago than its reopen window)
    and whether that case was opened for this item.  ``runs``: the batch's loaded work (the file
    stage's; it then flushes nothing itself)."""
    if runs is None:  # on its own: write the audit events at the end
        runs = Runs(setup)
        result = on_attached(session, case=case, item_id=item_id, setup=setup, doc_type=doc_type, channel=channel,
                             actor=actor, now=now, runs=runs)
        runs.write(session)
        return result
    now = now or utcnow()
    run = runs.get(session, case, actor=actor, now=now)
    if run is None:
        run = _begin_work_for(session, case=case, setup=setup, actor=actor, now=now, batch=runs.batch)
        runs.register(run)
    if run.work.status == "closed":
        if not within_reopen_window(run):
            return _open_linked(session, old=case, item_id=item_id, doc_type=doc_type, channel=channel,
                                setup=setup, actor=actor, now=now, runs=runs)
        overrides.reopen(run, reason=f"new correspondence (item {item_id}) within the reopen window "
                                     f"({run.ct.reopen_window})", override=False)
    customer_replied(run, item_id=item_id)
    return case, False


def start_work_for(session: Session, *, case: Case, setup: WorkSetup, actor: Actor = SYSTEM,
                   now: datetime | None = None, stage: str | None = None) -> CaseWork:
    """Give a case without work (imported, or opened before case work) its type's work, at the
    first stage or ``stage``, with no task done; a closed case stays closed."""
    return _begin_work_for(session, case=case, setup=setup, actor=actor, now=now, stage=stage).work


def _begin_work_for(session: Session, *, case: Case, setup: WorkSetup, actor: Actor, now: datetime | None,
                    stage: str | None = None, batch: Batch | None = None) -> Run:
    fine = "closed" if case.status == "closed" else "pending" if case.status == "pending" else "open"
    return engine.begin_case(session, case=case, case_type=setup.type_for_case(case), actor=actor,
                             calendars=setup.calendars, now=now or utcnow(), stage=stage, status=fine, batch=batch)


def start_imported(session: Session, *, case: Case, setup: WorkSetup, stage: str | None = None,
                   now: datetime | None = None) -> CaseWork | None:
    """``casework import cases``: a case gets its work once; a re-import leaves running work (and
    its stage) alone: supervisors move work, imports do not."""
    if session.get(CaseWork, case.id) is not None:
        return None
    return start_work_for(session, case=case, setup=setup, actor=Actor(name="import", role="system"), now=now,
                          stage=stage)


def within_reopen_window(run: Run) -> bool:
    """Whether the case closed no longer ago than its type's ``reopen_window`` (working time).

    A case closed outside casework (imported closed, or closed before case work: its work started
    closed, so ``closed_at`` is only when that happened) has no known close time; its opening is
    the earliest it can have closed, so it reopens only when even that is within the window, and
    otherwise the item opens a linked case."""
    closed_at = as_utc(run.work.closed_at or run.case.updated_at)
    if not _closed_in_casework(run) and run.case.opened_at is not None:
        closed_at = min(closed_at, as_utc(run.case.opened_at))
    calendar = run.calendar()
    return working_time_between(closed_at, run.now, calendar) <= parse_duration(run.ct.reopen_window, calendar)


def _closed_in_casework(run: Run) -> bool:
    """Whether casework closed the case (a ``case.closed`` event), so ``closed_at`` is its close time."""
    return run.session.scalar(select(AuditEvent.id).where(AuditEvent.case_id == run.case.id,
                                                          AuditEvent.action == "case.closed").limit(1)) is not None


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
    run.finish(flush=False)


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
                 setup: WorkSetup, actor: Actor, now: datetime, runs: Runs) -> tuple[Case, bool]:
    """The item goes to the open case linked to ``old`` (a reply to it), or opens one."""
    existing = runs.linked.get(old.id) or _linked_open_case(session, old)
    if existing is not None:
        return on_attached(session, case=existing, item_id=item_id, setup=setup, doc_type=doc_type, channel=channel,
                           actor=actor, now=now, runs=runs)
    customer_id = old.customer.customer_id if old.customer is not None else None
    reason = f"correspondence for {old.ref}, closed longer ago than its reopen window"
    new = open_case(session, customer_id=customer_id, case_type=old.case_type, subject=old.subject, actor=actor.name,
                    reason=reason, team=old.team)
    runs.linked[old.id] = new
    runs.batch.events.extend([
        {"actor": actor.name, "action": "case.linked", "reason": reason, "case_id": old.id, "item_id": item_id,
         "details": {"to": new.ref}, "at": now},
        {"actor": actor.name, "action": "case.linked", "reason": reason, "case_id": new.id, "item_id": item_id,
         "details": {"from": old.ref}, "at": now}])
    old_type = session.get(CaseWork, old.id)
    case_type = setup.type_named(old_type.case_type if old_type else None) or setup.type_for_doc(doc_type)
    runs.register(engine.begin_case(session, case=new, case_type=case_type, actor=actor, calendars=setup.calendars,
                                    now=now, facts={"doc_type": doc_type, "channel": channel}, opened_now=True,
                                    batch=runs.batch))
    log.info("item %s for closed case %s opened linked case %s", item_id, old.ref, new.ref)
    return new, True


class InboundWork:
    """The file stage's work hooks (``casestore.items.WorkHooks``) over one ``WorkSetup``, or over
    the newest one ``current`` gives (read at the start of each transaction: calendars and case
    types reloaded while the process runs apply from the next batch on)."""

    def __init__(self, setup: WorkSetup, *, actor: Actor = SYSTEM,
                 current: Callable[[], WorkSetup] | None = None) -> None:
        self.actor = actor
        self.runs = Runs(setup, current=current)

    @property
    def setup(self) -> WorkSetup:
        return self.runs.setup

    def _setup(self, session: Session) -> WorkSetup:
        self.runs.begin(session)
        return self.runs.setup

    def prepare(self, session: Session, *, cases: Sequence[Case]) -> None:
        self.runs.prefetch(session, cases, actor=self.actor, now=utcnow())

    def finish(self, session: Session) -> None:
        self.runs.write(session)

    def status_changed(self) -> list[str]:
        """The cases whose coarse status the last batch changed (each reported once)."""
        refs = sorted(self.runs.batch.status_changed)
        self.runs.batch.status_changed.clear()
        return refs

    def new_case(self, session: Session, *, case: Case, item_id: str, doc_type: str, channel: str,
                 case_type: str | None = None) -> None:
        on_new_case(session, case=case, doc_type=doc_type, channel=channel, setup=self._setup(session),
                    actor=self.actor, runs=self.runs, case_type_name=case_type)

    def attached(self, session: Session, *, case: Case, item_id: str, doc_type: str,
                 channel: str) -> tuple[Case, bool]:
        return on_attached(session, case=case, item_id=item_id, setup=self._setup(session), doc_type=doc_type,
                           channel=channel, actor=self.actor, runs=self.runs)
