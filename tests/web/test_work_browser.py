"""Working cases in Chromium: get-next -> tick the checklist -> choose a code -> complete -> the
next task, with the keyboard only; a refused completion (422) and a stale claim (409) shown in
place; a supervisor's reassignment with its reason in the timeline; an agent who sees no
supervisor action and is refused one; axe-core on every page this adds, and the screenshot of
the work page and the case page for the README.

The module's own cases: two complaints of team complaints whose urgency puts their tasks first
in carol's get-next; carol is a complaints agent, sue the package's supervisor, ada its admin.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from casestore.cases import get_case
from casestore.models import utcnow
from casestore.work import overrides
from casestore.work.actor import Actor
from casestore.work.models import SlaClock, WorkTask
from tests.web.conftest import People, Workbench, add_person, axe_violations, start_case

pytestmark = pytest.mark.timeout(180)
FIRST, SECOND = "CM-2025-000101", "CM-2025-000102"
DOCS = Path(__file__).resolve().parents[2] / "docs"
SUE = Actor(name="sue", role="supervisor")


@pytest.fixture(scope="module", autouse=True)
def work_cases(workbench: Workbench) -> None:
    add_person(workbench, "carol", "agent", ["complaints"])
    start_case(workbench, ref=FIRST, case_type="complaint", team="complaints", subject="bank charges", urgency=500)
    start_case(workbench, ref=SECOND, case_type="complaint", team="complaints", subject="a lost card", urgency=400)


def _task(wb: Workbench, ref: str, name: str) -> WorkTask:
    with wb.rt.read_sessions() as s:
        case = get_case(s, ref=ref)
        found = s.query(WorkTask).filter_by(case_id=case.id, name=name).order_by(WorkTask.id.desc()).first()
        assert found is not None
        s.expunge(found)
        return found


def _photograph(page: Any, tmp_path: Path, name: str, *, height: int) -> None:
    """A screenshot of the page; with CASEWORK_UPDATE_SCREENSHOTS set, for the README in docs/ (a
    small palette PNG)."""
    page.set_viewport_size({"width": 1200, "height": height})
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    if os.environ.get("CASEWORK_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        Image.open(shot).convert("RGB").quantize(64).save(DOCS / name, optimize=True)


def _focused(page: Any) -> str:
    return str(page.evaluate("() => document.activeElement ? document.activeElement.id : ''"))


def test_keyboard_only_get_next_tick_code_complete_next(people: People, workbench: Workbench) -> None:
    page = people.page("carol")
    page.goto("/")
    assert page.get_by_role("heading", name="My work").is_visible()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf".*/cases/{FIRST}\?task=\d+"))
    task_id = int(re.search(r"task=(\d+)", page.url).group(1))  # type: ignore[union-attr]
    assert page.get_by_role("heading", name="Your task: Log and acknowledge the complaint").is_visible()
    assert _focused(page) == f"tick-{task_id}-details_recorded", "the task's first checklist item has the focus"
    for n, item in enumerate(("details_recorded", "acknowledgement_sent", "vulnerability_checked")):
        if n:
            page.keyboard.press("Tab")
        assert _focused(page) == f"tick-{task_id}-{item}"
        page.keyboard.press("Space")
        page.locator(f"#item-{task_id}-{item}.item-done").wait_for()  # saved, swapped in, focus kept
        assert _focused(page) == f"tick-{task_id}-{item}"
    assert page.locator("#task-missing").inner_text() == "Every required item is ticked or waived."
    page.keyboard.press("Tab")
    assert _focused(page) == "task-code"
    page.keyboard.press("ArrowDown")
    assert page.locator("#task-code").input_value() == "acknowledged"
    page.keyboard.press("Tab")
    page.keyboard.type("Acknowledged on the phone; she wants the charges refunded.")
    page.keyboard.press("Tab")
    assert _focused(page) == "task-next"  # "then open my next task", ticked already
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*done=completed_next.*"))
    assert page.get_by_role("status").filter(has_text="Task completed. Here is your next task.").is_visible()
    heading = page.get_by_role("heading", name=re.compile(r"^Your task: Can it be resolved"))
    assert heading.is_visible() and f"/cases/{FIRST}?" in page.url
    assert _focused(page) == "task-code", "the next task (no checklist) starts at its completion code"
    done = _task(workbench, FIRST, "acknowledge")
    assert (done.state, done.completion_code, done.completed_by) == ("completed", "acknowledged", "carol")
    assert "she wants the charges refunded" in page.locator("#timeline").inner_text()
    nxt = _task(workbench, FIRST, "assess")
    assert (nxt.state, nxt.assignee) == ("active", "carol")
    page.close()


def test_refusals_are_shown_in_place(people: People, workbench: Workbench) -> None:
    page = people.page("carol")
    page.goto(f"/cases/{SECOND}")
    page.get_by_role("button", name="Claim Log and acknowledge the complaint").click()
    page.wait_for_url(re.compile(rf".*/cases/{SECOND}\?task=\d+"))
    task_id = int(re.search(r"task=(\d+)", page.url).group(1))  # type: ignore[union-attr]
    page.get_by_label("Completion code").select_option("acknowledged")
    page.get_by_role("button", name="Complete task").click()
    alert = page.locator("#task-error")
    alert.wait_for()
    assert alert.inner_text().startswith("Not completed (422): task") and "details_recorded" in alert.inner_text()
    assert _focused(page) == "task-error", "the focus goes to why"
    assert page.locator("#task-code").input_value() == "acknowledged", "what was chosen is kept"

    with workbench.rt.sessions() as s, s.begin():  # meanwhile a supervisor gives the task to alice
        overrides.reassign_task(s, task_id=task_id, to="alice", actor=SUE, reason="alice knows her",
                                calendars=workbench.rt.calendars)
    page.get_by_label("What went wrong and what the customer wants put right is recorded").check()
    item_alert = page.locator(f"#item-{task_id}-details_recorded [role=alert]")
    item_alert.wait_for()
    assert "expired or was taken over" in item_alert.inner_text()
    assert not page.locator(f"#tick-{task_id}-details_recorded").is_checked(), "the box shows what is stored"
    page.get_by_role("button", name="Complete task").click()
    page.locator("#task-error", has_text="Not completed (409)").wait_for()
    page.close()


def test_supervisor_reassigns_with_a_reason_that_shows_in_the_timeline(people: People, workbench: Workbench) -> None:
    page = people.page("sue")
    page.goto(f"/cases/{SECOND}")
    actions = page.get_by_role("region", name="Supervisor actions")
    actions.locator("summary", has_text="Reassign a task").click()
    form = actions.locator("#act-reassign")
    task = _task(workbench, SECOND, "acknowledge")
    form.get_by_label("Task").select_option(str(task.id))
    form.get_by_label("Give it to").select_option("carol")
    form.get_by_label("Reason").fill("Carol spoke to the customer yesterday")
    form.get_by_role("button", name="Reassign a task").click()
    page.wait_for_url(re.compile(r".*done=reassigned.*"))
    entry = page.locator("#timeline .entry-event", has_text="task.reassigned").first
    assert "Carol spoke to the customer yesterday" in entry.inner_text() and "by sue" in entry.inner_text()
    assert (_task(workbench, SECOND, "acknowledge").assignee) == "carol"

    form = page.locator("#act-reassign")  # a missing reason is refused in place, with its status
    form.locator("summary").click()
    form.get_by_label("Reason").evaluate("(el) => el.removeAttribute('required')")
    form.get_by_role("button", name="Reassign a task").click()
    form.get_by_role("alert").filter(has_text="give a reason").wait_for()
    page.close()


def test_an_agent_sees_no_supervisor_action_and_is_refused_one(people: People, workbench: Workbench) -> None:
    page = people.page("carol")
    page.goto(f"/cases/{SECOND}")
    assert page.get_by_role("heading", name="Your task: Log and acknowledge the complaint").is_visible()
    assert page.get_by_role("region", name="Supervisor actions").count() == 0
    assert page.get_by_text("Reassign a task").count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    task = _task(workbench, SECOND, "acknowledge")
    refused = page.request.post(f"/cases/{SECOND}/override/reassign", headers={"X-CSRF-Token": token},
                                form={"task_id": str(task.id), "to": "alice", "reason": "I would rather not"})
    assert refused.status == 403 and "role agent may not reassign" in refused.text()
    assert _task(workbench, SECOND, "acknowledge").assignee == "carol"
    assert page.goto("/supervisor").status == 403
    page.close()


def test_new_pages_pass_axe_and_the_work_page_is_photographed(people: People, workbench: Workbench,
                                                                tmp_path: Path) -> None:
    now = utcnow()
    with workbench.rt.sessions() as s, s.begin():  # one clock breached and one at risk, for the picture
        second, first = get_case(s, ref=SECOND), get_case(s, ref=FIRST)
        ack = s.query(SlaClock).filter_by(case_id=second.id, name="acknowledgement").one()
        ack.warn_at, ack.due_at = now - timedelta(hours=3), now - timedelta(minutes=25)
        final = s.query(SlaClock).filter_by(case_id=first.id, name="final_response").one()
        final.warn_at = now - timedelta(minutes=5)
    found: dict[str, Any] = {}
    pages = [("carol", "/"), ("carol", "/queues/complaints_intake"), ("carol", f"/cases/{SECOND}"),
             ("sue", f"/cases/{SECOND}"), ("sue", "/supervisor"), ("sue", "/ops"), ("ada", "/admin/users"),
             ("ada", "/admin/tokens"), ("ada", "/admin/case-types"), ("ada", "/admin/calendars")]
    opened: dict[str, Any] = {}
    for user, path in pages:
        page = opened.get(user) or opened.setdefault(user, people.page(user))
        page.goto(path)
        if user == "sue" and path.startswith("/cases/"):
            for summary in page.locator("details.override summary").all():
                summary.click()  # every supervisor form open
        found[f"{user} {path}"] = axe_violations(page)
        if (user, path) == ("carol", "/"):
            assert page.locator("#my-work .clock-breached").count() >= 1
            _photograph(page, tmp_path, "workbench-work.png", height=760)
        if (user, path) == ("carol", f"/cases/{SECOND}"):
            assert page.get_by_role("heading", name="Your task: Log and acknowledge the complaint").is_visible()
            _photograph(page, tmp_path, "workbench-case.png", height=900)
    for page in opened.values():
        page.close()
    assert {k: v for k, v in found.items() if v} == {}
