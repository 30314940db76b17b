"""Escalation: what a case type says to do when one of its SLA clocks warns or breaches.

``Escalations`` collects the actions of many clock events (a sweep's batch) and applies them set
by set, so escalating ten thousand clocks is a handful of statements, not ten thousand:

* ``raise_urgency``: ``case_work.urgency`` goes up by the amount, and every open task of the case
  takes the case's urgency (the order get-next serves);
* ``move_to_queue``: every open task of the case moves to that queue (an active one stays with its
  holder, in the new queue);
* ``unassign``: every active task of the case goes back to its queue (no assignee, no lease);
* ``notify_role``: an audit event ``sla.notify`` naming the role (what the notification pages and
  the outbox read).

Each change writes one audit event (``case.urgency_raised``, ``task.moved``, ``task.unassigned``,
``sla.notify``), by ``system``, with the clock and the event in its details.  Tasks are locked
(PostgreSQL ``FOR UPDATE``) while they are read and changed, so an agent's concurrent claim or
completion is either before or after, never lost.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from casestore import audit
from casestore.audit import NewEvent
from casestore.work.definitions import CaseType, EscalationAction
from casestore.work.models import CaseWork, WorkTask

log = logging.getLogger(__name__)

SlaEvent = Literal["warn", "breach"]
_OPEN = text("tasks.state IN ('queued', 'active')")
_CASE_WORK = cast(Table, CaseWork.__table__)  # Core statements: executemany with WHERE by key
_TASKS = cast(Table, WorkTask.__table__)


@dataclass
class Escalations:
    """The escalation actions of a batch of clock events, applied together by ``apply``."""

    urgency: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # case -> raise by
    moves: dict[int, str] = field(default_factory=dict)  # case -> queue
    unassign: set[int] = field(default_factory=set)
    why: dict[int, dict[str, Any]] = field(default_factory=dict)  # case -> the clock event behind it
    events: list[NewEvent] = field(default_factory=list)

    def add(self, case_type: CaseType, *, case_id: int, clock: str, on: SlaEvent) -> int:
        """Collect the actions ``case_type`` names for this clock event; how many."""
        actions: list[EscalationAction] = [a for rule in case_type.escalations if rule.clock == clock and rule.on == on
                                           for a in rule.actions]
        cause = {"clock": clock, "event": on}
        for action in actions:
            self.why[case_id] = cause
            if action.raise_urgency:
                self.urgency[case_id] += action.raise_urgency
            if action.move_to_queue:
                self.moves[case_id] = action.move_to_queue
            if action.unassign:
                self.unassign.add(case_id)
            if action.notify_role:
                self.events.append({"actor": "system", "action": "sla.notify", "case_id": case_id,
                                    "details": {"role": action.notify_role, **cause}})
        return len(actions)

    def apply(self, session: Session) -> int:
        """Apply what was collected; returns how many audit events it wrote."""
        raised = {c: n for c, n in self.urgency.items() if n}
        if raised:
            session.execute(update(_CASE_WORK).where(_CASE_WORK.c.case_id == bindparam("cid"))
                            .values(urgency=_CASE_WORK.c.urgency + bindparam("n")),
                            [{"cid": c, "n": n} for c, n in raised.items()])
            for c, n in raised.items():
                self.events.append({"actor": "system", "action": "case.urgency_raised", "case_id": c,
                                    "details": {"by": n, **self.why[c]}})
        touched = set(raised) | set(self.moves) | self.unassign
        if touched:
            self._update_tasks(session, touched)
        return audit.record_many(session, self.events)

    def _update_tasks(self, session: Session, case_ids: set[int]) -> None:
        lock = session.get_bind().dialect.name == "postgresql"
        stmt = (select(WorkTask.id, WorkTask.case_id, WorkTask.state, WorkTask.queue, WorkTask.assignee,
                       WorkTask.lease_expires_at, WorkTask.lease_version, WorkTask.name)
                .where(_OPEN, WorkTask.case_id.in_(sorted(case_ids))).order_by(WorkTask.id))
        if lock:
            stmt = stmt.with_for_update()
        tasks = session.execute(stmt).all()
        if not tasks:
            return
        urgency = {int(case_id): int(value) for case_id, value in session.execute(
            select(CaseWork.case_id, CaseWork.urgency).where(CaseWork.case_id.in_(sorted(case_ids))))}
        changes = []
        for tid, case_id, state, queue, assignee, lease_expires_at, lease_version, name in tasks:
            new_queue = self.moves.get(case_id, queue)
            drop = case_id in self.unassign and state == "active"
            changes.append({"tid": tid, "urgency": urgency.get(case_id, 0), "queue": new_queue,
                            "state": "queued" if drop else state, "assignee": None if drop else assignee,
                            "lease": None if drop else lease_expires_at})
            cause = self.why.get(case_id, {})
            if new_queue != queue:
                self.events.append({"actor": "system", "action": "task.moved", "case_id": case_id,
                                    "details": {"task_id": tid, "task": name, "from": queue, "to": new_queue,
                                                **cause}})
            if drop:
                self.events.append({"actor": "system", "action": "task.unassigned", "case_id": case_id,
                                    "details": {"task_id": tid, "task": name, "queue": new_queue,
                                                "assignee": assignee, "lease_version": lease_version, **cause}})
        session.execute(
            update(_TASKS).where(_TASKS.c.id == bindparam("tid"))
            .values(urgency=bindparam("urgency"), queue=bindparam("queue"), state=bindparam("state"),
                    assignee=bindparam("assignee"), lease_expires_at=bindparam("lease")),
            changes,
        )
        for obj in list(session.identity_map.values()):  # loaded copies are stale now
            if isinstance(obj, WorkTask | CaseWork) and obj.case_id in case_ids:
                session.expire(obj)
        log.info("escalation: %d open task(s) of %d case(s) updated", len(changes), len(case_ids))
