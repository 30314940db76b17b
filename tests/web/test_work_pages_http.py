"""The work pages over plain HTTP against the running server: my work, get-next with nothing
waiting, a queue page by pages, claiming, the 409 and 422 answers in place, every supervisor
action with its reason, the supervisor dashboard's reassignment.

The module's own cases are claims of team claims (``CL-...``); dan is a claims agent, erin an
agent of a team that works no queue; sue and alice come from the package's seed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import select

from api.web.pages import work
from casestore.cases import get_case
from casestore.models import AuditEvent
from casestore.work import engine
from casestore.work.actor import Actor
from casestore.work.models import CaseWork, WorkTask
from tests.web.conftest import PASSWORD, Workbench, add_person, start_case

pytestmark = pytest.mark.timeout(120)
CLAIMS = ["CL-2026-000001", "CL-2026-000002", "CL-2026-000003"]
HX = {"HX-Request": "true"}


@pytest.fixture(scope="module", autouse=True)
def claim_cases(workbench: Workbench) -> None:
    add_person(workbench, "dan", "agent", ["claims"])
    add_person(workbench, "erin", "agent", ["mailroom"])
    for n, ref in enumerate(CLAIMS):
        start_case(workbench, ref=ref, case_type="claim", team="claims", customer_id="C2", urgency=300 - n * 100)


@contextmanager
def signed_in(wb: Workbench, name: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client signed in as ``name`` and the session's CSRF token (sent as htmx sends it)."""
    with httpx.Client(base_url=wb.url, timeout=30) as client:
        form = client.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form)
        assert token
        r = client.post("/login", data={"name": name, "password": PASSWORD, "login_token": token.group(1)})
        assert r.status_code == 303, r.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
        assert csrf
        client.headers["X-CSRF-Token"] = csrf.group(1)
        yield client, csrf.group(1)


def _task(wb: Workbench, ref: str, name: str) -> WorkTask:
    with wb.rt.read_sessions() as s:
        case = get_case(s, ref=ref)
        found = s.scalar(select(WorkTask).where(WorkTask.case_id == case.id, WorkTask.name == name)
                         .order_by(WorkTask.id.desc()))
        assert found is not None
        s.expunge(found)
        return found


def _events(wb: Workbench, ref: str, action: str) -> list[AuditEvent]:
    with wb.rt.read_sessions() as s:
        case = get_case(s, ref=ref)
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.action == action)
                              .order_by(AuditEvent.id)))
        s.expunge_all()
        return rows


def test_get_next_with_nothing_waiting_says_so(workbench: Workbench) -> None:
    with signed_in(workbench, "erin") as (client, _):
        r = client.post("/work/next")
        assert r.status_code == 303 and r.headers["location"] == "/?done=nothing_waiting"
        page = client.get(r.headers["location"]).text
        assert "Nothing is waiting in your queues right now." in page
        assert "No queue is worked by your teams" in page


def test_my_work_shows_held_tasks_with_every_clock_and_my_queues(workbench: Workbench) -> None:
    register = _task(workbench, CLAIMS[0], "register")
    with signed_in(workbench, "dan") as (client, _):
        r = client.post(f"/tasks/{register.id}/claim")
        assert r.status_code == 303 and r.headers["location"] == f"/cases/{CLAIMS[0]}?task={register.id}"
        page = client.get("/").text
    held = page[page.index('id="held-title"'):page.index('id="queues-title"')]
    assert CLAIMS[0] in held and "Register the claim and check the policy" in held
    assert "Register and contact the customer within 1 business day" in held and "on time" in held
    assert re.search(r"lease ends <time [^>]*data-countdown[^>]*>in (29|30) min</time>", held)
    queues = page[page.index('id="queues-title"'):page.index('id="triage-title"')]
    with workbench.rt.read_sessions() as s:
        states = s.scalars(select(WorkTask.state).where(WorkTask.queue == "claims_registration")).all()
    expected = [str(sum(1 for x in states if x in ("queued", "active"))), str(states.count("queued"))]
    row = re.search(r'href="/queues/claims_registration">claims_registration</a>.*?</tr>', queues, re.S)
    assert row and re.findall(r'<td class="num[^"]*">(\d+)</td>', row.group(0))[:2] == expected, row.group(0)
    assert int(expected[0]) >= 3 and "collections" not in queues and "complaints" not in queues, "dan's teams only"


def test_a_queue_page_goes_in_get_next_order_a_page_at_a_time(workbench: Workbench,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(work, "QUEUE_PAGE", 1)  # the server runs in this process
    with signed_in(workbench, "dan") as (client, _):
        first = client.get("/queues/claims_registration").text
        assert CLAIMS[1] in first and CLAIMS[2] not in first, "urgency 200 before 100 (300 is dan's already)"
        following = re.search(r'href="(/queues/claims_registration\?after=[^"]+)" rel="next"', first)
        assert following
        second = client.get(following.group(1).replace("&amp;", "&")).text
        assert CLAIMS[2] in second and CLAIMS[1] not in second
    with signed_in(workbench, "alice") as (client, _):
        refused = client.get("/queues/claims_registration")
        assert refused.status_code == 403 and "worked by team claims" in refused.text


def test_stale_claims_and_missing_items_are_answered_in_place(workbench: Workbench) -> None:
    register = _task(workbench, CLAIMS[0], "register")
    assert register.assignee == "dan"
    with signed_in(workbench, "dan") as (client, _):
        r = client.post(f"/tasks/{register.id}/complete", headers=HX,
                        data={"code": "registered", "note": "keep this note", "lease_version": register.lease_version})
        assert r.status_code == 422 and "needs its required checklist items first" in r.text
        assert 'id="active-task"' in r.text and ">keep this note</textarea>" in r.text
        assert '<option value="registered" selected>' in r.text
        r = client.post(f"/tasks/{register.id}/complete", headers=HX, data={"code": "paid_out"})
        assert r.status_code == 422 and "use one of: registered, not_covered" in r.text
        stale = register.lease_version - 1
        r = client.post(f"/tasks/{register.id}/checklist/policy_in_force", headers=HX,
                        data={"done": "1", "lease_version": stale})
        assert r.status_code == 409 and "expired or was taken over" in r.text
        assert f'id="tick-{register.id}-policy_in_force"' in r.text and "checked" not in r.text.split("<label")[0]
        r = client.post(f"/tasks/{register.id}/checklist/policy_in_force", headers=HX,
                        data={"done": "1", "lease_version": register.lease_version})
        assert r.status_code == 200 and 'class="check-item item-done"' in r.text
        assert 'id="task-missing" class="small" hx-swap-oob="true">Still to tick:' in r.text
        r = client.post(f"/tasks/{register.id}/complete", headers=HX,
                        data={"code": "registered", "lease_version": stale})
        assert r.status_code == 409 and "Not completed (409)" in r.text


def test_completing_brings_up_the_next_task(workbench: Workbench) -> None:
    register = _task(workbench, CLAIMS[0], "register")
    with signed_in(workbench, "dan") as (client, _):
        for item in ("cover_checked", "excess_noted", "customer_contacted"):
            assert client.post(f"/tasks/{register.id}/checklist/{item}", headers=HX,
                               data={"done": "1", "lease_version": register.lease_version}).status_code == 200
        r = client.post(f"/tasks/{register.id}/complete", headers=HX,
                        data={"code": "registered", "lease_version": register.lease_version, "next": "1"})
        assert r.status_code == 204
        nxt = r.headers["hx-redirect"]
        task_id = int(re.search(r"task=(\d+)", nxt).group(1))  # type: ignore[union-attr]
        with workbench.rt.read_sessions() as s:
            following = s.get(WorkTask, task_id)
            assert following is not None and (following.assignee, following.state) == ("dan", "active")
        assert nxt.endswith("done=completed_next")
        page = client.get(nxt).text
        assert "Task completed. Here is your next task." in page and 'data-autofocus' in page
        r = client.post(f"/tasks/{task_id}/release", data={"reason": "not today"})
        assert r.status_code == 303 and r.headers["location"] == "/?done=released"


def test_every_supervisor_action_keeps_its_reason(workbench: Workbench) -> None:
    ref = CLAIMS[2]
    register = _task(workbench, ref, "register")
    actions = [
        ("redirect", {"task_id": register.id, "queue": "claims_senior"}, "task.redirected"),
        ("waive", {"item": f"{register.id}:excess_noted"}, "checklist.waived"),
        ("pause_clock", {"clock": "first_contact"}, "clock.paused"),
        ("resume_clock", {"clock": "first_contact"}, "clock.resumed"),
        ("skip_stage", {"stage": "registration"}, "stage.skipped"),
        ("reopen_stage", {"stage": "registration"}, "stage.reopened"),
    ]
    with signed_in(workbench, "sue") as (client, _):
        for action, fields, event in actions:
            reason = f"because of {action}"
            r = client.post(f"/cases/{ref}/override/{action}", headers=HX, data={**fields, "reason": reason})
            assert r.status_code == 204, (action, r.text)
            assert r.headers["hx-redirect"].startswith(f"/cases/{ref}?done=")
            assert [e.reason for e in _events(workbench, ref, event)][-1:] == [reason], action
        with workbench.rt.sessions() as s, s.begin():
            engine.close_case(s, ref=ref, code="withdrawn", actor=Actor(name="sue", role="supervisor"),
                              calendars=workbench.rt.calendars, reason="she withdrew it")
        page = client.get(f"/cases/{ref}").text
        assert "Reopen the case" in page and "was closed as withdrawn" in page
        r = client.post(f"/cases/{ref}/override/reopen_case", data={"reason": "she changed her mind"})
        assert r.status_code == 303 and r.headers["location"] == f"/cases/{ref}?done=case_reopened#work"
        assert "she changed her mind" in client.get(r.headers["location"]).text
        r = client.post(f"/cases/{ref}/override/teleport", data={"reason": "x"})
        assert r.status_code == 404
        r = client.post(f"/cases/{ref}/override/pause_clock", headers=HX, data={"clock": "nope", "reason": "x"})
        assert r.status_code == 422 and "has no clock &#39;nope&#39;" in r.text
    with workbench.rt.read_sessions() as s:
        work = s.get(CaseWork, get_case(s, ref=ref).id)
        assert work is not None and work.status != "closed" and work.reopened == 1


def test_the_supervisor_dashboard_reassigns_and_comes_back(workbench: Workbench) -> None:
    task = _task(workbench, CLAIMS[1], "register")
    with signed_in(workbench, "dan") as (client, _):
        assert client.post(f"/tasks/{task.id}/claim").status_code == 303
        assert client.get("/supervisor").status_code == 403
    with signed_in(workbench, "sue") as (client, _):
        page = client.get("/supervisor").text
        dan = page[page.index(">dan <"):]
        assert CLAIMS[1] in dan.split("<h3")[0] and "Register the claim and check the policy" in dan
        r = client.post(f"/cases/{CLAIMS[1]}/override/reassign",
                        data={"task_id": task.id, "to": "bob", "reason": "dan is off sick", "back": "supervisor"})
        assert r.status_code == 303 and r.headers["location"] == "/supervisor?done=reassigned"
        page = client.get(r.headers["location"]).text
        assert "The task was reassigned" in page
        assert CLAIMS[1] in page[page.index(">bob <"):].split("<h3")[0]
        r = client.post(f"/cases/{CLAIMS[1]}/override/reassign", headers=HX,
                        data={"task_id": task.id, "to": "alice", "reason": "alice is free"})
        assert r.status_code == 422 and "may not see case" in r.text, "alice is not in claims"
    assert _task(workbench, CLAIMS[1], "register").assignee == "bob"
    assert _events(workbench, CLAIMS[1], "task.reassigned")[-1].reason == "dan is off sick"


def test_rest_get_next_takes_a_session_only_with_its_csrf_header(workbench: Workbench) -> None:
    """``POST /api/v1/work/next`` checks its credentials inside its own worker thread (one trip):
    a session cookie still needs the CSRF header, and nothing at all is 401."""
    with signed_in(workbench, "erin") as (client, csrf):
        del client.headers["X-CSRF-Token"]
        refused = client.post("/api/v1/work/next")
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
        answered = client.post("/api/v1/work/next", headers={"X-CSRF-Token": csrf})
        assert answered.status_code == 200 and answered.json() == {"task": None}, answered.text
    stranger = httpx.post(f"{workbench.url}/api/v1/work/next", timeout=30)
    assert stranger.status_code == 401 and stranger.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(f"{workbench.url}/api/v1/work/next", headers={"Authorization": "Bearer cw_nothing"}, timeout=30)
    assert wrong.status_code == 401 and "invalid token" in wrong.json()["detail"]
