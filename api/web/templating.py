"""Jinja2 templates (autoescaped) and the headers every workbench response carries.

Pages are served with a strict Content-Security-Policy: scripts and styles only from this site's
own files (no inline script can run, whatever a document or an email contains), images from this
site or ``data:`` URLs, no plugins, no framing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from api.web.session_auth import PageContext

log = logging.getLogger(__name__)
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"  # bytes served as they are


def security_headers(response: Response, csp: str = PAGE_CSP) -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M")


def _until(value: datetime | None) -> str:
    """``in 3 h 5 min`` or ``2 h ago``, from now."""
    if value is None:
        return ""
    from api.web.sla import until
    from casestore.models import utcnow

    return until(value, utcnow())


def _notice_count(request: Request, page: PageContext) -> int | None:
    """The signed-in person's unread notifications for the header (kept a few seconds per person,
    as the queue counts are; None when it cannot be read: the page shows no count, not an error)."""
    from casestore.work import notifications

    state = request.app.state
    cache = getattr(state, "notice_counts", None)
    if cache is None:
        return None

    def read() -> int:
        with state.runtime.read_sessions() as session:
            return notifications.unread_count(session, page.user)

    try:
        return int(cache.get(page.user.name, read).value)
    except Exception:  # the page matters more than its badge
        log.exception("reading the unread notifications of %s failed", page.user.name)
        return None


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["when"] = _when
templates.env.filters["until"] = _until
templates.env.filters["clock"] = lambda value: value.strftime("%H:%M:%S") if value else ""
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


def render(request: Request, name: str, context: Mapping[str, Any], *, page: PageContext | None = None,
           status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    values: dict[str, Any] = {"user": page.user if page else None, "csrf_token": page.csrf_token if page else ""}
    if page is not None and "notice_count" not in context:
        values["notice_count"] = _notice_count(request, page)
    values.update(context)
    response = templates.TemplateResponse(request, name, values, status_code=status_code,
                                          headers=dict(headers or {}))
    return security_headers(response)
