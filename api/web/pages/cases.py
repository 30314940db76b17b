"""The case page ``/cases/{ref}``: header (with the case's work: type, stage, status, urgency,
owner, SLA clocks), stage bar, the viewer's task and the supervisor actions (``api.web.work_panel``;
their forms post to ``api.web.pages.case_work``), customer panel, timeline (htmx "load more"),
notes.

A case the viewer's teams may not see answers 404, as ``GET /api/v1/cases/{ref}`` does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from api import work_routes
from api.web.notices import notice_for
from api.web.pages import reply
from api.web.refusals import Refusal, attempt
from api.web.refusals import body as body_of
from api.web.session_auth import Page, PageError, runtime_of
from api.web.templating import render
from api.web.visibility import may_see, visible_case
from api.web.work_panel import work_panel
from casestore import case_view, notes, timeline
from casestore.errors import CaseStoreError
from casestore.models import utcnow

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 30
REPLY_ROLES = frozenset({"agent", "supervisor", "admin"})  # who may reply (api.outbound_routes)
KIND_LABELS = {"": "Everything", "document": "Documents", "note": "Notes", "event": "Events"}


def _kinds(kind: str) -> tuple[str, ...]:
    if kind and kind not in timeline.KINDS:
        raise PageError(400, f"There is no timeline filter {kind!r}; choose documents, notes or events.")
    return (kind,) if kind else timeline.KINDS


def _page(request: Request, ref: str, kind: str, cursor: str | None, page: Page) -> timeline.TimelinePage:
    with runtime_of(request).read_sessions() as session:
        case = visible_case(session, page.user, ref)
        try:
            return timeline.case_timeline(session, case_id=case.id, kinds=_kinds(kind), cursor=cursor,
                                          limit=PAGE_SIZE)
        except CaseStoreError as exc:
            raise PageError(int(exc.http_status), str(exc)) from None


@router.get("/cases/{ref}")
def case_page(request: Request, ref: str, page: Page,
              kind: Annotated[str, Query(max_length=20)] = "",
              task: Annotated[int | None, Query(ge=1, description="the task to work on (after get-next)")] = None,
              done: Annotated[str, Query(max_length=40)] = "") -> Response:
    with runtime_of(request).read_sessions() as session:
        case = visible_case(session, page.user, ref)
        header = case_view.case_header(session, case=case)
        panel = work_panel(session, case=case, user=page.user, now=utcnow(), task_id=task)
        others = case_view.other_cases(session, case=case, can_see=lambda c: may_see(page.user, c))
        first = timeline.case_timeline(session, case_id=case.id, kinds=_kinds(kind), limit=PAGE_SIZE)
        form = reply.reply_form(request, session, case) if page.user.role in REPLY_ROLES else None
        attention = reply.needing_a_person(session, page.user, case)
    return render(request, "case.html", {"case": header, "others": others, "timeline": first, "kind": kind,
                                         "kinds": KIND_LABELS, "nav": "cases", "panel": panel, "reply": form,
                                         "attention": attention,
                                         "focus_task": task is not None, "notice": notice_for(done)}, page=page)


@router.get("/cases/{ref}/timeline")
def timeline_more(request: Request, ref: str, page: Page,
                  kind: Annotated[str, Query(max_length=20)] = "",
                  cursor: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """The next page of entries, as list items plus the next "load more" button (htmx swaps it in
    place of the button that asked)."""
    more = _page(request, ref, kind, cursor, page)
    return render(request, "_timeline_more.html", {"case": {"ref": ref}, "timeline": more, "kind": kind},
                  page=page)


@router.post("/cases/{ref}/notes")
def add_note(request: Request, ref: str, page: Page,
             body: Annotated[str, Form(max_length=notes.MAX_NOTE_CHARS)] = "") -> Response:
    """Add a note through the REST route's own function (``api.work_routes.add_note``: the engine's
    ``add_note``, so the case type's ``add_note`` permission and the access rule apply exactly as
    in the API).  Refused: the error page with the route's status (404 hidden, 403 not allowed,
    422 empty)."""
    with runtime_of(request).read_sessions() as session:
        visible_case(session, page.user, ref)  # 404 for a hidden case before anything else
    got = attempt(lambda: work_routes.add_note(request, ref, body_of(work_routes.NewNote, body=body), page.user))
    if isinstance(got, Refusal):
        raise PageError(got.status, got.message)
    return Response(status_code=303, headers={"Location": f"/cases/{ref}#timeline"})
