"""``/ops``: for the mailroom and administrators: intake today per channel and outcome, the
connectors and their health, the pipeline stages, the latest dead letters, the triage backlog.

Replaying or discarding a single dead letter is not offered yet (``casework dlq replay`` replays
them all); the page lists what failed, where and why.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.web.session_auth import Page, runtime_of
from api.web.templating import render
from casestore import intake_stats
from casestore.models import OUTCOMES
from connectors.metrics import REGISTRY

router = APIRouter(include_in_schema=False)


@router.get("/ops")
def ops_page(request: Request, page: Page) -> Response:
    today = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    with runtime_of(request).read_sessions() as session:
        intake = intake_stats.intake_since(session, since=today)
        failed_today = intake_stats.failed_since(session, since=today)
        failures = intake_stats.recent_failures(session, limit=50)
        backlog = intake_stats.triage_backlog(session)
    extra = request.app.state.health_extra
    pipeline: dict[str, Any] = (extra() or {}).get("pipeline", {}) if extra is not None else {}
    return render(request, "ops.html", {
        "today": today, "intake": intake, "outcomes": OUTCOMES, "failed_today": failed_today,
        "failures": failures, "backlog": backlog, "connectors": REGISTRY.health(), "pipeline": pipeline,
        "nav": "ops",
    }, page=page)
