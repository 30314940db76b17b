"""Rows for the queue and clock tests, inserted directly (the engine that normally writes them is
built beside this code): a stored case type, cases with their work state, tasks, SLA clocks."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from casestore.models import AuditEvent, Case, User
from casestore.work.actor import Actor
from casestore.work.definitions import CaseType
from casestore.work.models import NO_DUE, CaseTypeVersion, CaseWork, SlaClock, WorkTask

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning

AGENT_ACTIONS = ["work_task", "add_note", "set_status", "close_case"]


def definition(name: str = "complaint", version: int = 1, *, queues: dict[str, str] | None = None,
               lease: str = "30m", escalations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A small valid case type: queue name -> team, one stage with one task per queue."""
    queues = queues or {"complaints": "complaints", "complaints_senior": "seniors"}
    value = {
        "name": name, "version": version, "title": name.title(),
        "roles": {"agent": AGENT_ACTIONS, "supervisor": [*AGENT_ACTIONS, "reassign", "redirect"]},
        "queues": [{"name": q, "team": team, "lease": lease} for q, team in queues.items()],
        "clocks": [{"name": "first_response", "duration": "4h", "warn_at_percent": 75},
                   {"name": "resolution", "duration": "5d"}],
        "escalations": escalations or [],
        "stages": [{"name": "handle", "tasks": [{"name": f"work_{q}", "queue": q, "codes": ["done"]}
                                                for q in queues]}],
        "completion_codes": ["resolved"],
    }
    CaseType.model_validate(value)
    return value


def store_definition(session: Session, value: dict[str, Any], *, loaded_at: datetime | None = None) -> None:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    session.add(CaseTypeVersion(name=value["name"], version=value["version"], digest=digest, definition=value,
                                source=f"{value['name']}.yaml", loaded_at=loaded_at or datetime.now(UTC)))
    session.flush()


_counter = iter(range(1, 10**9))


def case(session: Session, *, team: str | None = "complaints", restricted: bool = False, case_type: str = "complaint",
         version: int = 1, urgency: int = 0) -> Case:
    n = next(_counter)
    c = Case(ref=f"T-{n:06d}", case_type=case_type, status="open", subject=f"case {n}", team=team,
             restricted=restricted)
    session.add(c)
    session.flush()
    session.add(CaseWork(case_id=c.id, case_type=case_type, type_version=version, stage="handle", status="open",
                         urgency=urgency))
    session.flush()
    return c


def task(session: Session, case_: Case, *, queue: str = "complaints", urgency: int = 0,
         due_at: datetime | None = None, created_at: datetime | None = None, name: str | None = None,
         state: str = "queued") -> WorkTask:
    t = WorkTask(case_id=case_.id, stage="handle", name=name or f"work_{queue}_{next(_counter)}", state=state,
                 queue=queue, urgency=urgency, due_at=due_at or NO_DUE, created_at=created_at or T0, checklist={})
    session.add(t)
    session.flush()
    return t


def clock(session: Session, case_: Case, *, name: str = "first_response", start: datetime = T0,
          budget: timedelta = timedelta(hours=4), warn_percent: int = 75) -> SlaClock:
    """A running clock on a 24x7 calendar: warn and due are plain offsets from the start."""
    warn_at = start + budget * warn_percent / 100
    due_at = start + budget
    c = SlaClock(case_id=case_.id, name=name, state="running", calendar="default",
                 budget_seconds=int(budget.total_seconds()), used_seconds=0, warn_percent=warn_percent,
                 started_at=start, resumed_at=start, due_at=due_at, warn_at=warn_at, next_fire_at=warn_at)
    session.add(c)
    session.flush()
    return c


def agent(name: str = "alice", *teams: str, role: str = "agent") -> Actor:
    return Actor(name=name, role=role, teams=teams or ("complaints",))


def user_of(actor: Actor) -> User:
    return User(name=actor.name, role=actor.role, teams=list(actor.teams), disabled=actor.disabled)


def assert_each_task_handed_out_once(sessions: sessionmaker[Session], results: list[list[int]], tasks: int) -> None:
    """After agents raced for ``tasks`` tasks (``results[n]``: the ids agent n got): each task went to
    one agent, more than one agent got work, one ``task.claimed`` event each, and the stored
    assignee is the agent that got it (agents are named ``agent{n}``)."""
    handed = [tid for r in results for tid in r]
    assert len(handed) == len(set(handed)) == tasks
    assert sum(1 for r in results if r) > 1, "the agents ran side by side"
    with sessions() as s:
        claims = Counter(e.details["task_id"] for e in s.scalars(select(AuditEvent)) if e.action == "task.claimed")
        assert len(claims) == tasks and set(claims.values()) == {1}
        holders = {t.id: t.assignee for t in s.scalars(select(WorkTask))}
        for n, r in enumerate(results):
            assert all(holders[tid] == f"agent{n}" for tid in r)
