"""``/ops``: for the mailroom and administrators: intake today per channel and outcome, the
connectors and their health, the pipeline stages, the latest dead letters, the triage backlog,
and the outbound messages a person must act on (rejected address, no mobile number, unconfirmed)
in the cases the viewer may see.

Supervisors and administrators replay or discard a single dead letter (item and stage) from the
list, with a reason for a discard, through the services ``casework dlq replay|discard`` use
(``api.dead_letter_ops``); the audit trail records who did it and why, and a handled entry shows
as replayed or discarded until the item fails again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from api.dead_letter_ops import Filters, discard_entries, replay_entries
from api.web.notices import notice_for
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import render
from casestore import intake_stats, items
from casestore.models import OUTCOMES
from casestore.outbound import operations
from casestore.outbound.models import NEEDS_A_PERSON
from casestore.validation import as_utc
from connectors.metrics import REGISTRY

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
HANDLERS = ("supervisor", "admin")  # who may replay or discard a dead letter here


def _ops_page(request: Request, page: PageContext, *, notice: str = "", problem: str = "",
              status_code: int = 200) -> Response:
    today = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    with runtime_of(request).read_sessions() as session:
        intake = intake_stats.intake_since(session, since=today)
        failed_today = intake_stats.failed_since(session, since=today)
        failures = intake_stats.recent_failures(session, limit=50)
        backlog = intake_stats.triage_backlog(session)
        handled = items.dead_letter_actions(session, keys=[f.item_id for f in failures if f.item_id])
        attention = operations.list_messages(session, viewer=page.user, states=NEEDS_A_PERSON, limit=100)
    states = {}
    for f in failures:  # handled: a replay or discard recorded after this failure was
        found = handled.get((f.item_id or "", f.stage))
        states[(f.item_id, f.stage, f.failed_at)] = (found.action.removeprefix("dlq.")
                                                     if found is not None and found.at >= as_utc(f.failed_at) else "")
    extra = request.app.state.health_extra
    pipeline: dict[str, Any] = (extra() or {}).get("pipeline", {}) if extra is not None else {}
    return render(request, "ops.html", {
        "today": today, "intake": intake, "outcomes": OUTCOMES, "failed_today": failed_today,
        "failures": failures, "states": states, "backlog": backlog, "connectors": REGISTRY.health(),
        "pipeline": pipeline, "nav": "ops", "notice": notice, "problem": problem,
        "may_handle": page.user.role in HANDLERS, "attention": attention,
    }, page=page, status_code=status_code)


@router.get("/ops")
def ops_page(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    return _ops_page(request, page, notice=notice_for(done))


def _handle(request: Request, page: PageContext, *, item_id: str, stage: str, reason: str, discard: bool) -> Response:
    if page.user.role not in HANDLERS:
        raise PageError(403, "Only supervisors and administrators replay or discard dead letters.")
    if discard and not reason.strip():
        return _ops_page(request, page, status_code=422,
                         problem="Give a reason for discarding: it goes into the audit trail.")
    filters = Filters(items=(item_id,), stage=stage or None)
    rt = runtime_of(request)
    actor = page.user.name
    done = (discard_entries(rt, filters=filters, actor=actor, reason=reason.strip()) if discard
            else replay_entries(rt, filters=filters, actor=actor, reason=reason.strip()))
    if not done:
        return _ops_page(request, page, status_code=409, problem=(
            f"There is no outstanding dead letter for item {item_id[:8]} in stage {stage or 'any'}: it was handled "
            "already, or it has no letter on the bus (reload the page)."))
    log.info("%s %s dead letter(s) of item %s (%s)", actor, "discarded" if discard else "replayed", item_id, stage)
    return Response(status_code=303, headers={"Location": f"/ops?done={'discarded' if discard else 'replayed'}"})


ItemId = Annotated[str, Form(min_length=1, max_length=200)]
Stage = Annotated[str, Form(max_length=50)]
Reason = Annotated[str, Form(max_length=2000)]


@router.post("/ops/dead-letters/replay")
def replay(request: Request, page: Page, item_id: ItemId, stage: Stage = "", reason: Reason = "") -> Response:
    return _handle(request, page, item_id=item_id, stage=stage, reason=reason, discard=False)


@router.post("/ops/dead-letters/discard")
def discard(request: Request, page: Page, item_id: ItemId, stage: Stage = "", reason: Reason = "") -> Response:
    return _handle(request, page, item_id=item_id, stage=stage, reason=reason, discard=True)
