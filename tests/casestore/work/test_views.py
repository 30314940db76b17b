"""The typed read models of a case's work and the case folder, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from casestore import customers
from casestore.importer import import_cases
from casestore.work import engine, overrides
from casestore.work.actor import SYSTEM
from casestore.work.folder import case_folder
from casestore.work.inbound import start_imported
from casestore.work.setup import WorkSetup
from casestore.work.views import work_view
from tests.casestore.work.engine_setup import (
    ALICE,
    CALS,
    HOUR,
    SUE,
    T0,
    case_type,
    claim,
    new_case,
    people,
    register,
    start,
    task,
)

STUCK = case_type([{"name": "handle", "tasks": [
    task("review", required=False, when="case.urgency > 5",
         checklist=[{"name": "read", "label": "Read it"}, {"name": "extra", "label": "More", "required": False}]),
    task("approve", after=["review"], codes=["approved", "refused"]),
]}, {"name": "close", "tasks": [task("letter")]}], clocks=[{"name": "resolution", "duration": "10h", "title": "Ten"}])


@pytest.fixture(autouse=True)
def _people(session: Session) -> None:
    people(session)


def test_the_work_view_names_stage_clocks_tasks_stuck_and_history(session: Session) -> None:
    case = start(session, STUCK)
    view = work_view(session, case=case)
    assert view is not None
    assert (view.case_type, view.version, view.stage, view.status, view.urgency) == ("complaint", 1, "handle",
                                                                                     "open", 0)
    assert view.stuck == ["task approve waits for review, which was skipped: its condition `case.urgency > 5` "
                          "does not hold"]
    assert [(s.name, s.state) for s in view.stages] == [("handle", "current"), ("close", "ahead")]
    [clock] = view.clocks
    assert (clock.name, clock.title, clock.state, clock.due_at, clock.budget_seconds) == (
        "resolution", "Ten", "running", T0 + 10 * HOUR, 36000)
    assert view.tasks == []
    assert [h.action for h in view.history] == ["work.started", "clock.started", "stage.started"]

    overrides.raise_urgency(session, ref=case.ref, urgency=9, actor=SUE, reason="look at it", calendars=CALS, now=T0)
    t = claim(session, case, "review")
    engine.tick(session, task_id=t.id, item="read", actor=ALICE, calendars=CALS, now=T0)
    view = work_view(session, case=case)
    assert view is not None and view.stuck == [] and view.urgency == 9
    [review] = view.tasks
    assert (review.name, review.state, review.assignee, review.codes, review.missing) == (
        "review", "active", "alice", ["done"], [])
    assert [(i.name, i.state, i.by) for i in review.checklist] == [("read", "done", "alice"), ("extra", "open", None)]
    assert review.due_at == T0 + 10 * HOUR
    assert "case.urgency_raised" in [h.action for h in view.history]


def test_the_case_folder_carries_its_work(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    case = start(session, STUCK)
    folder = case_folder(session, ref=case.ref)
    assert folder.ref == case.ref and folder.work is not None and folder.work.stage == "handle"
    dumped = folder.model_dump(mode="json")
    assert dumped["work"]["clocks"][0]["due_at"].startswith("2026-03-02T19:00:00")
    assert {"ref", "status", "customer", "documents", "notes", "audit", "work"} <= set(dumped)


def test_import_gives_each_case_its_work_at_the_stage_named(session: Session, tmp_path: Path) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email="jane@example.com")
    register(session, STUCK)
    general = register(session, case_type([{"name": "handle", "tasks": [task("look")]}], name="general"))
    setup = WorkSetup(case_types={"complaint": STUCK, "general": general}, doc_types={}, calendars=CALS)
    path = tmp_path / "cases.csv"
    path.write_text("ref,customer_id,case_type,status,subject,team,stage\n"
                    "L-1,C1,complaint,open,first,complaints,\n"
                    "L-2,C1,complaint,open,later,complaints,close\n"
                    "L-3,C1,complaint,open,bad,complaints,nowhere\n"
                    "L-4,C1,old-type,closed,legacy,complaints,\n")
    report = import_cases(session, path, on_case=lambda s, c, stage: start_imported(s, case=c, setup=setup,
                                                                                       stage=stage, now=T0))
    assert (report.created, [e.line for e in report.errors]) == (3, [4])
    assert "stage 'nowhere' is not a stage of complaint" in report.errors[0].reason
    stages = {}
    for ref in ("L-1", "L-2", "L-4"):
        view = case_folder(session, ref=ref).work
        assert view is not None
        stages[ref] = (view.case_type, view.stage, view.status, [t.name for t in view.tasks])
    assert stages == {"L-1": ("complaint", "handle", "open", []), "L-2": ("complaint", "close", "open", ["letter"]),
                      "L-4": ("general", "handle", "closed", [])}
    again = import_cases(session, path, on_case=lambda s, c, stage: start_imported(s, case=c, setup=setup,
                                                                                      stage=stage, now=T0))
    assert again.updated == 3  # a re-import leaves running work alone


TWO_CLOCKS = case_type([{"name": "handle", "tasks": [task("work", title="Do the work")]}],
                       clocks=[{"name": "first_response", "duration": "2h", "title": "Answer"},
                               {"name": "resolution", "duration": "10h"}])


def test_tasks_with_clocks_reads_titles_and_every_clock_of_many_cases(session: Session) -> None:
    from casestore.work.views import tasks_with_clocks

    first = start(session, TWO_CLOCKS)
    second = new_case(session)
    engine.start_case(session, case=second, case_type=TWO_CLOCKS, actor=SYSTEM, calendars=CALS, now=T0 + HOUR)
    found = tasks_with_clocks(session, tasks=[(first.id, "work"), (second.id, "work"), (second.id, "gone")])
    assert found[(first.id, "work")].title == "Do the work"
    assert found[(second.id, "gone")].title == "", "a task the definition does not have: no title"
    assert [(c.name, c.title, c.due_at) for c in found[(second.id, "work")].clocks] == [
        ("first_response", "Answer", T0 + 3 * HOUR), ("resolution", "", T0 + 11 * HOUR)]
    assert tasks_with_clocks(session, tasks=[]) == {}
