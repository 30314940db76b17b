"""Working a case from its page: tick a checklist item, complete the task with a code (then the
next task comes up), and the supervisor actions (reassign, redirect, waive, skip or reopen a
stage, pause or resume a clock, reopen the case), each with a reason.

Each action is the REST route's own function (``api.work_routes``: the same service, the same
role matrix, the same audit event); what the route would answer as a 4xx (a stale claim 409, an
unticked item or a missing reason 422, an agent's override 403) is shown in the page, in place,
with that status.  The forms post with htmx (the CSRF header from <body>) or as plain forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from api import queue_routes, work_routes
from api.web.pages.work import case_link, see_other
from api.web.refusals import Refusal, attempt, body
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import render
from api.web.visibility import may_see
from api.web.work_panel import WorkPanel, work_panel
from casestore.cases import find_case
from casestore.errors import InvalidInput
from casestore.models import Case, utcnow
from casestore.work.models import WorkTask

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=2000)]


def _panel(request: Request, page: PageContext, *, task_id: int) -> tuple[str, WorkPanel | None]:
    """The case of ``task_id`` (its ref) and its work panel as the viewer sees it now."""
    with runtime_of(request).read_sessions() as session:
        task = session.get(WorkTask, task_id)
        case = session.get(Case, task.case_id) if task is not None else None
        if case is None or not _sees(page, case):
            raise PageError(404, f"There is no task {task_id} (or it is not visible to your teams).")
        return case.ref, work_panel(session, case=case, user=page.user, now=utcnow(), task_id=task_id)


def _sees(page: PageContext, case: Case) -> bool:
    return may_see(page.user, case)


def _task_fragment(request: Request, page: PageContext, *, task_id: int, refusal: Refusal | None = None,
                   code: str = "", note: str = "", then_next: bool = True) -> Response:
    ref, panel = _panel(request, page, task_id=task_id)
    return render(request, "_active_task.html", {
        "case": {"ref": ref}, "panel": panel, "error": refusal.message if refusal else "",
        "error_status": refusal.status if refusal else 200, "code": code, "note": note, "then_next": then_next,
    }, page=page, status_code=refusal.status if refusal else 200)


@router.post("/tasks/{task_id}/checklist/{item}")
def tick(request: Request, task_id: int, item: str, page: Page,
         done: Annotated[str, Form(max_length=10)] = "",
         lease_version: Annotated[int | None, Form()] = None) -> Response:
    """Tick (checkbox on) or untick (off) an item; answers the item again (htmx swaps it in)."""
    got = attempt(lambda: work_routes.tick(request, task_id, item, body(
        work_routes.Tick, done=bool(done), lease_version=lease_version), page.user))
    refusal = got if isinstance(got, Refusal) else None
    if not request.headers.get("HX-Request"):
        if refusal is not None:
            raise PageError(refusal.status, refusal.message)
        ref, _ = _panel(request, page, task_id=task_id)
        return see_other(request, case_link(ref, task_id))
    ref, panel = _panel(request, page, task_id=task_id)
    task = panel.mine if panel is not None and panel.mine is not None and panel.mine.id == task_id else None
    if task is None and panel is not None:
        task = next((t for t in panel.work.tasks if t.id == task_id), None)
    found = next((i for i in task.checklist if i.name == item), None) if task is not None else None
    return render(request, "_checklist_item.html", {
        "case": {"ref": ref}, "t": task, "i": found, "item_name": item, "oob": True,
        "item_error": refusal.message if refusal else "",
    }, page=page, status_code=refusal.status if refusal else 200)


@router.post("/tasks/{task_id}/complete")
def complete(request: Request, task_id: int, page: Page,
             code: Annotated[str, Form(max_length=100)] = "",
             note: Annotated[str, Form(max_length=100_000)] = "",
             lease_version: Annotated[int | None, Form()] = None,
             then_next: Annotated[str, Form(alias="next", max_length=10)] = "") -> Response:
    """Complete the task; then (``next`` ticked) the next task comes up: another task I hold, else
    get-next's.  Refused: the task panel again, with why, the code and the note kept."""
    got = attempt(lambda: work_routes.complete(request, task_id, body(
        work_routes.Complete, code=code, note=note or None, lease_version=lease_version), page.user))
    if isinstance(got, Refusal):
        if not request.headers.get("HX-Request"):
            raise PageError(got.status, got.message)
        return _task_fragment(request, page, task_id=task_id, refusal=got, code=code, note=note,
                              then_next=bool(then_next))
    with runtime_of(request).read_sessions() as session:
        done_task = session.get(WorkTask, task_id)
        case = session.get(Case, done_task.case_id) if done_task is not None else None
        ref = case.ref if case is not None else ""
    if not then_next:
        return see_other(request, case_link(ref, done="completed"))
    held = queue_routes.my_work(request, page.user)
    if held:
        return see_other(request, case_link(held[0].case_ref, held[0].id, done="completed_next"))
    following = attempt(lambda: queue_routes.next_work(runtime_of(request), queue_routes.actor_of(page.user)))
    if isinstance(following, Refusal) or following.task is None:
        return see_other(request, case_link(ref, done="completed_none"))
    return see_other(request, case_link(following.task.case_ref, following.task.id, done="completed_next"))


# -- supervisor actions -----------------------------------------------------------------------------


def _task_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("choose a task") from None


def _overrides(request: Request, ref: str, page: PageContext, f: dict[str, str]) -> dict[str, Callable[[], object]]:
    user, reason = page.user, f["reason"]
    item_task, _, item = f["item"].partition(":")
    return {
        "reassign": lambda: work_routes.reassign(request, _task_id(f["task_id"]), body(
            work_routes.Reassign, to=f["to"], reason=reason), user),
        "redirect": lambda: work_routes.redirect(request, _task_id(f["task_id"]), body(
            work_routes.Redirect, queue=f["queue"], reason=reason), user),
        "waive": lambda: work_routes.waive(request, _task_id(item_task), body(
            work_routes.Waive, item=item, reason=reason), user),
        "skip_stage": lambda: work_routes.skip_stage(request, ref, f["stage"], body(
            work_routes.Override, reason=reason), user),
        "reopen_stage": lambda: work_routes.reopen_stage(request, ref, f["stage"], body(
            work_routes.Override, reason=reason), user),
        "pause_clock": lambda: work_routes.pause_clock(request, ref, f["clock"], body(
            work_routes.Override, reason=reason), user),
        "resume_clock": lambda: work_routes.resume_clock(request, ref, f["clock"], body(
            work_routes.Override, reason=reason), user),
        "reopen_case": lambda: work_routes.reopen(request, ref, body(work_routes.Override, reason=reason), user),
    }


DONE = {"reassign": "reassigned", "redirect": "redirected", "waive": "waived", "skip_stage": "stage_skipped",
        "reopen_stage": "stage_reopened", "pause_clock": "clock_paused", "resume_clock": "clock_resumed",
        "reopen_case": "case_reopened"}


@router.post("/cases/{ref}/override/{action}")
def override(request: Request, ref: str, action: str, page: Page, reason: Text = "",
             task_id: Annotated[str, Form(max_length=20)] = "", to: Annotated[str, Form(max_length=100)] = "",
             queue: Annotated[str, Form(max_length=63)] = "", item: Annotated[str, Form(max_length=100)] = "",
             stage: Annotated[str, Form(max_length=63)] = "", clock: Annotated[str, Form(max_length=63)] = "",
             back: Annotated[str, Form(max_length=20)] = "") -> Response:
    """One supervisor action (``action``: reassign, redirect, waive, skip_stage, reopen_stage,
    pause_clock, resume_clock, reopen_case) with its reason; then back to the case (or to the
    supervisor dashboard), where the reason shows in the timeline."""
    with runtime_of(request).read_sessions() as session:
        case = find_case(session, ref=ref)
        if case is None or not _sees(page, case):
            raise PageError(404, f"There is no case {ref} (or it is not visible to your teams).")
    fields = {"reason": reason, "task_id": task_id, "to": to, "queue": queue, "item": item, "stage": stage,
              "clock": clock}
    run = _overrides(request, ref, page, fields).get(action)
    if run is None:
        raise PageError(404, f"There is no supervisor action {action!r}.")
    got = attempt(run)
    if isinstance(got, Refusal):
        if not request.headers.get("HX-Request"):
            raise PageError(got.status, got.message)
        return render(request, "_refusal.html", {"message": got.message}, page=page, status_code=got.status)
    log.info("%s on case %s by %s: %s", action, ref, page.user.name, reason)
    if back == "supervisor":
        return see_other(request, f"/supervisor?done={DONE[action]}")
    return see_other(request, case_link(ref, done=DONE[action]))
