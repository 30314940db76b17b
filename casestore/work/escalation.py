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
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, Integer, Table, any_, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
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
_V = TypeVar("_V", bound=Hashable)


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
        """Apply what was collected; returns how many audit events it wrote.  Statements are one
        per group of cases that get the same change (typically a handful per batch)."""
        raised = {c: n for c, n in self.urgency.items() if n}
        pg = session.get_bind().dialect.name == "postgresql"
        for n, cases in _groups(raised.items()):
            session.execute(update(_CASE_WORK).where(in_ids(_CASE_WORK.c.case_id, cases, pg))
                            .values(urgency=_CASE_WORK.c.urgency + n))
        for c, n in raised.items():
            self.events.append({"actor": "system", "action": "case.urgency_raised", "case_id": c,
                                "details": {"by": n, **self.why[c]}})
        touched = set(raised) | set(self.moves) | self.unassign
        if touched:
            self._update_tasks(session, touched, raised=set(raised))
        return audit.record_many(session, self.events)

    def _update_tasks(self, session: Session, case_ids: set[int], *, raised: set[int]) -> None:
        lock = session.get_bind().dialect.name == "postgresql"
        stmt = (select(WorkTask.id, WorkTask.case_id, WorkTask.state, WorkTask.queue, WorkTask.assignee,
                       WorkTask.lease_version, WorkTask.name)
                .where(_OPEN, in_ids(WorkTask.case_id, sorted(case_ids), lock)).order_by(WorkTask.id))
        if lock:  # agents' claims and completions of these tasks wait for this batch, or it for them
            stmt = stmt.with_for_update()
        tasks = session.execute(stmt).all()
        for tid, case_id, state, queue, assignee, lease_version, name in tasks:
            cause = self.why.get(case_id, {})
            new_queue = self.moves.get(case_id, queue)
            if new_queue != queue:
                self.events.append({"actor": "system", "action": "task.moved", "case_id": case_id,
                                    "details": {"task_id": tid, "task": name, "from": queue, "to": new_queue,
                                                **cause}})
            if case_id in self.unassign and state == "active":
                self.events.append({"actor": "system", "action": "task.unassigned", "case_id": case_id,
                                    "details": {"task_id": tid, "task": name, "queue": new_queue,
                                                "assignee": assignee, "lease_version": lease_version, **cause}})
        ids = [t[0] for t in tasks]
        if not ids:
            return
        pg = session.get_bind().dialect.name == "postgresql"
        chosen = in_ids(_TASKS.c.id, ids, pg)  # the rows read (and locked) above, nothing that opened since
        case_urgency = (select(_CASE_WORK.c.urgency).where(_CASE_WORK.c.case_id == _TASKS.c.case_id)
                        .scalar_subquery())
        change = ((case_id, (self.moves.get(case_id), case_id in raised)) for case_id in sorted(case_ids))
        for (target, raise_), cases in _groups(change):  # one new row version per task: queue and urgency at once
            values: dict[str, Any] = {}
            if target is not None:
                values["queue"] = target
            if raise_:  # open tasks carry their case's urgency (get-next's order)
                values["urgency"] = case_urgency
            if values:
                session.execute(update(_TASKS).where(chosen, in_ids(_TASKS.c.case_id, cases, pg)).values(**values))
        if self.unassign:
            session.execute(update(_TASKS).where(chosen, in_ids(_TASKS.c.case_id, sorted(self.unassign), pg),
                                                 text("tasks.state = 'active'"))
                            .values(state="queued", assignee=None, lease_expires_at=None))
        for obj in list(session.identity_map.values()):  # loaded copies are stale now
            if isinstance(obj, WorkTask | CaseWork) and obj.case_id in case_ids:
                session.expire(obj)
        log.info("escalation: %d open task(s) of %d case(s) updated", len(ids), len(case_ids))


def in_ids(col: Any, ids: list[int], pg: bool) -> ColumnElement[bool]:
    """``col IN ids``; on PostgreSQL ``col = ANY(array)``: one parameter, not a thousand (which
    cost more to render and parse than the database took to run the statement)."""
    if pg:
        return cast(ColumnElement[bool], col == any_(literal(ids, ARRAY(Integer))))
    return cast(ColumnElement[bool], col.in_(ids))


def _groups(pairs: Iterable[tuple[int, _V]]) -> list[tuple[_V, list[int]]]:
    """(value, cases) for each distinct value of (case, value) pairs."""
    grouped: dict[_V, list[int]] = defaultdict(list)
    for case_id, value in pairs:
        grouped[value].append(case_id)
    return [(value, sorted(cases)) for value, cases in grouped.items()]
