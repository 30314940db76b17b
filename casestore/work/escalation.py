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
``sla.notify``), by ``system``, with the clock and the event in its details; the events are
``INSERT ... SELECT`` statements over the rows they are about, written before those rows change.  Tasks are locked
(PostgreSQL ``FOR UPDATE``) while they are read and changed, so an agent's concurrent claim or
completion is either before or after, never lost.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, Integer, Table, any_, literal, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from casestore import audit
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
    why: dict[int, tuple[str, SlaEvent]] = field(default_factory=dict)  # case -> the clock event behind it
    notify: list[tuple[str, str, SlaEvent, int]] = field(default_factory=list)  # (role, clock, event, case)

    def add(self, case_type: CaseType, *, case_id: int, clock: str, on: SlaEvent) -> int:
        """Collect the actions ``case_type`` names for this clock event; how many."""
        actions: list[EscalationAction] = [a for rule in case_type.escalations if rule.clock == clock and rule.on == on
                                           for a in rule.actions]
        for action in actions:
            self.why[case_id] = (clock, on)
            if action.raise_urgency:
                self.urgency[case_id] += action.raise_urgency
            if action.move_to_queue:
                self.moves[case_id] = action.move_to_queue
            if action.unassign:
                self.unassign.add(case_id)
            if action.notify_role:
                self.notify.append((action.notify_role, clock, on, case_id))
        return len(actions)

    def apply(self, session: Session, *, now: datetime) -> int:
        """Apply what was collected; returns how many audit events it wrote.  Statements are one
        per group of cases that get the same change (typically a handful per batch); the audit
        events are written by ``INSERT ... SELECT`` (``audit.record_select``), never row by row."""
        pg = session.get_bind().dialect.name == "postgresql"
        written = 0
        for (role, clock, on), cases in _groups((c, (r, k, e)) for r, k, e, c in self.notify):
            for round_ in _rounds(cases):  # a case named twice for the same role is notified twice
                written += audit.record_select(
                    session, action="sla.notify", at=now, case_id=_CASE_WORK.c.case_id,
                    rows=select(_CASE_WORK.c.case_id).where(in_ids(_CASE_WORK.c.case_id, round_, pg)),
                    details={"role": role, "clock": clock, "event": on})
        raised = {c: n for c, n in self.urgency.items() if n}
        for n, cases in _groups(raised.items()):
            session.execute(update(_CASE_WORK).where(in_ids(_CASE_WORK.c.case_id, cases, pg))
                            .values(urgency=_CASE_WORK.c.urgency + n))
        for (n, (clock, on)), cases in _groups((c, (n, self.why[c])) for c, n in raised.items()):
            written += audit.record_select(
                session, action="case.urgency_raised", at=now, case_id=_CASE_WORK.c.case_id,
                rows=select(_CASE_WORK.c.case_id).where(in_ids(_CASE_WORK.c.case_id, cases, pg)),
                details={"by": n, "clock": clock, "event": on})
        touched = set(raised) | set(self.moves) | self.unassign
        if touched:
            written += self._update_tasks(session, touched, raised=set(raised), now=now)
        return written

    def _update_tasks(self, session: Session, case_ids: set[int], *, raised: set[int], now: datetime) -> int:
        pg = session.get_bind().dialect.name == "postgresql"
        stmt = select(WorkTask.id).where(_OPEN, in_ids(WorkTask.case_id, sorted(case_ids), pg)).order_by(WorkTask.id)
        if pg:  # agents' claims and completions of these tasks wait for this batch, or it for them
            stmt = stmt.with_for_update()
        ids = list(session.scalars(stmt))
        if not ids:
            return 0
        chosen = in_ids(_TASKS.c.id, ids, pg)  # the rows read (and locked) above, nothing that opened since
        t = _TASKS.c
        written = 0
        # the events first, from the rows as they are (the queue a task moves from)
        moved = ((c, (q, self.why[c])) for c, q in self.moves.items() if c in case_ids)
        for (target, (clock, on)), cases in _groups(moved):
            written += audit.record_select(
                session, action="task.moved", at=now, case_id=t.case_id,
                rows=select(t.id).where(chosen, in_ids(t.case_id, cases, pg), t.queue != target),
                details={"task_id": t.id, "task": t.name, "from": t.queue, "to": target, "clock": clock, "event": on})
        unassigned = ((c, (self.moves.get(c), self.why[c])) for c in self.unassign if c in case_ids)
        for (to_queue, (clock, on)), cases in _groups(unassigned):
            written += audit.record_select(
                session, action="task.unassigned", at=now, case_id=t.case_id,
                rows=select(t.id).where(chosen, in_ids(t.case_id, cases, pg), text("tasks.state = 'active'")),
                details={"task_id": t.id, "task": t.name, "queue": to_queue if to_queue is not None else t.queue,
                         "assignee": t.assignee, "lease_version": t.lease_version, "clock": clock, "event": on})
        case_urgency = (select(_CASE_WORK.c.urgency).where(_CASE_WORK.c.case_id == t.case_id).scalar_subquery())
        change = ((case_id, (self.moves.get(case_id), case_id in raised)) for case_id in sorted(case_ids))
        for (new_queue, raise_), cases in _groups(change):  # one new row version per task: queue and urgency at once
            values: dict[str, Any] = {}
            if new_queue is not None:
                values["queue"] = new_queue
            if raise_:  # open tasks carry their case's urgency (get-next's order)
                values["urgency"] = case_urgency
            if values:
                session.execute(update(_TASKS).where(chosen, in_ids(t.case_id, cases, pg)).values(**values))
        if self.unassign:
            session.execute(update(_TASKS).where(chosen, in_ids(t.case_id, sorted(self.unassign), pg),
                                                 text("tasks.state = 'active'"))
                            .values(state="queued", assignee=None, lease_expires_at=None))
        for obj in list(session.identity_map.values()):  # loaded copies are stale now
            if isinstance(obj, WorkTask | CaseWork) and obj.case_id in case_ids:
                session.expire(obj)
        log.info("escalation: %d open task(s) of %d case(s) updated", len(ids), len(case_ids))
        return written


def in_ids(col: Any, ids: list[int], pg: bool) -> ColumnElement[bool]:
    """``col IN ids``; on PostgreSQL ``col = ANY(array)``: one parameter, not a thousand (which
    cost more to render and parse than the database took to run the statement), sent as the
    array's text (``int_array``)."""
    if pg:
        return cast(ColumnElement[bool], col == any_(sql_cast(literal(int_array(ids)), ARRAY(Integer))))
    return cast(ColumnElement[bool], col.in_(ids))


def int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array of integers as its text, ``{1,2,3}``, for ``CAST(:p AS integer[])`` (or
    bigint[]): joined by ``str.join``, ~20x less client CPU than psycopg adapting a list of 5,000
    ints element by element (which was most of a calendar change's Python time)."""
    return "{" + ",".join(map(str, values)) + "}"


def _rounds(cases: list[int]) -> list[list[int]]:
    """Split a list with repeats into lists without: each case once per round."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = defaultdict(int)
    for case_id in cases:
        k = seen[case_id]
        seen[case_id] += 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(case_id)
    return rounds


def _groups(pairs: Iterable[tuple[int, _V]]) -> list[tuple[_V, list[int]]]:
    """(value, cases) for each distinct value of (case, value) pairs (a case repeated stays repeated)."""
    grouped: dict[_V, list[int]] = defaultdict(list)
    for case_id, value in pairs:
        grouped[value].append(case_id)
    return [(value, sorted(cases)) for value, cases in grouped.items()]
