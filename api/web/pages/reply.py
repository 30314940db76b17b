"""Replying from the case page: the Reply panel (channel, template, preview, the text edited before
it goes, attachments from the case folder, the task it is sent for) and the outbound messages of
the case that need a person (retry, confirm).

Thin over the REST routes' own functions (``api.outbound_routes``: the same service, the same
access rule, the same sandboxed templates): a preview is ``preview_reply``, Send is
``send_reply`` and goes through the outbox.  The form carries an idempotency key made when the
panel is drawn, so a double click (or a resent form) queues one message.  Nothing a customer or
a template wrote is ever put into the page unescaped (Jinja2 autoescape; the page's CSP allows
no inline script).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from api import outbound_routes
from api.auth import Principal
from api.params import MAX_DB_INT, DocumentId
from api.web.pages.work import see_other
from api.web.refusals import Refusal, attempt, body
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import render
from api.web.visibility import visible_case
from casestore.models import Case, Document
from casestore.outbound import operations
from casestore.outbound.models import CHANNELS, NEEDS_A_PERSON
from casestore.outbound.schemas import DraftView, OutboundView
from casestore.work.models import OPEN_TASK_STATES, WorkTask

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
Channel = Literal["email", "sms", "letter"]
MAX_ATTACHABLE = 200


@dataclass(frozen=True)
class Attachable:
    document_id: int
    label: str


@dataclass(frozen=True)
class TaskChoice:
    id: int
    label: str


@dataclass
class ReplyForm:
    """What the Reply panel shows: the choices, the values typed so far, and the preview."""

    ref: str
    templates: list[tuple[str, str]]  # (name, "name: channels")
    attachable: list[Attachable]
    tasks: list[TaskChoice]
    idempotency_key: str
    channel: str = "email"
    template: str = ""
    subject: str = ""
    body: str = ""
    attachments: list[int] = field(default_factory=list)
    task_id: int | None = None
    draft: DraftView | None = None
    error: str = ""


def _attachable(session: Session, case: Case) -> list[Attachable]:
    rows = session.execute(
        select(Document.id, Document.filename, Document.title, Document.content_type)
        .where(Document.case_id == case.id, Document.blob_sha256.is_not(None))
        .order_by(Document.id.desc()).limit(MAX_ATTACHABLE))
    return [Attachable(i, f"{fn or title or f'document {i}'} ({ctype or 'file'})") for i, fn, title, ctype in rows]


def _open_tasks(session: Session, case: Case) -> list[TaskChoice]:
    rows = session.execute(select(WorkTask.id, WorkTask.name, WorkTask.assignee)
                           .where(WorkTask.case_id == case.id, WorkTask.state.in_(OPEN_TASK_STATES))
                           .order_by(WorkTask.id))
    return [TaskChoice(i, f"{name.replace('_', ' ')} (task {i}{', ' + who if who else ''})") for i, name, who in rows]


def reply_form(request: Request, session: Session, case: Case, **values: object) -> ReplyForm:
    """The panel for ``case`` (visible to the viewer: the caller checked), with ``values`` typed so far."""
    found = outbound_routes.templates_for(request).available(case_type=case.case_type)
    channels: dict[str, list[str]] = {}
    for t in found:
        channels.setdefault(t.name, []).append(t.channel)
    templates = [(name, f"{name.replace('_', ' ')} ({', '.join(chs)})") for name, chs in sorted(channels.items())]
    form = ReplyForm(ref=case.ref, templates=templates, attachable=_attachable(session, case),
                     tasks=_open_tasks(session, case), idempotency_key=uuid.uuid4().hex)
    for key, value in values.items():
        setattr(form, key, value)
    if not form.template and templates:
        form.template = templates[0][0]
    return form


def needing_a_person(session: Session, user: Principal, case: Case) -> list[OutboundView]:
    """The case's messages a person must act on (failed, unconfirmed, bounced, held)."""
    return operations.list_messages(session, viewer=user, states=NEEDS_A_PERSON, case_ref=case.ref, limit=50)


def _panel(request: Request, page: PageContext, form: ReplyForm, *, status_code: int = 200) -> Response:
    """The panel alone for htmx; otherwise a page of its own with the panel (no script needed)."""
    name = "_reply.html" if request.headers.get("HX-Request") else "reply.html"
    return render(request, name, {"reply": form, "case": {"ref": form.ref}, "nav": "cases", "channels": CHANNELS},
                  page=page, status_code=status_code)


ChannelField = Annotated[Channel, Form()]
TextField = Annotated[str, Form(max_length=100_000)]
Key = Annotated[str, Form(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]


def _task(value: str) -> int | None:
    try:
        chosen = int(value) if value.strip() else None
    except ValueError:
        chosen = 0
    if chosen is not None and not 1 <= chosen <= MAX_DB_INT:
        raise PageError(422, "Choose a task of this case, or none.")
    return chosen


@router.post("/cases/{ref}/reply/preview")
def preview(request: Request, ref: str, page: Page, channel: ChannelField = "email",
            template: Annotated[str, Form(max_length=100)] = "", subject: Annotated[str, Form(max_length=300)] = "",
            text: TextField = "", attachments: Annotated[list[DocumentId] | None, Form()] = None,
            task_id: Annotated[str, Form(max_length=20)] = "", idempotency_key: Key = "",
            step: Annotated[Literal["template", "text"], Form()] = "template") -> Response:
    """The message as it would go now: ``step=template`` renders the chosen template (what was typed
    is replaced), ``step=text`` checks the edited text.  Writes nothing."""
    chosen = _task(task_id)
    use_text = step == "text" and text.strip() != ""
    request_body = attempt(lambda: body(
        outbound_routes.ReplyRequest, channel=channel, template=template or None,
        subject=(subject or None) if use_text and channel == "email" else None,
        body=text if use_text else None, attachments=(attachments or []) if channel == "email" else []))
    with runtime_of(request).read_sessions() as session:
        case = visible_case(session, page.user, ref)
        form = reply_form(request, session, case, channel=channel, template=template, subject=subject, body=text,
                          attachments=attachments or [], task_id=chosen)
    if idempotency_key:
        form.idempotency_key = idempotency_key
    if isinstance(request_body, Refusal):
        form.error = request_body.message
        return _panel(request, page, form, status_code=request_body.status)
    got = attempt(lambda: outbound_routes.preview_reply(request, ref, request_body, page.user))
    if isinstance(got, Refusal):
        form.error = got.message
        return _panel(request, page, form, status_code=got.status)
    form.draft, form.subject, form.body = got, got.subject, got.body
    return _panel(request, page, form)


@router.post("/cases/{ref}/reply")
def send(request: Request, ref: str, page: Page, channel: ChannelField = "email",
         template: Annotated[str, Form(max_length=100)] = "", subject: Annotated[str, Form(max_length=300)] = "",
         text: TextField = "", attachments: Annotated[list[DocumentId] | None, Form()] = None,
         task_id: Annotated[str, Form(max_length=20)] = "", idempotency_key: Key = "") -> Response:
    """Queue the reply in the outbox (the text as edited, else the template as it renders now);
    then back to the case, where the message shows in the timeline with its state."""
    with runtime_of(request).read_sessions() as session:
        case = visible_case(session, page.user, ref)
    if not idempotency_key:
        raise PageError(422, "The reply form is incomplete (no idempotency key); open the case again and send it.")
    chosen = _task(task_id)
    got = attempt(lambda: outbound_routes.send_reply(request, ref, body(
        outbound_routes.ReplyRequest, channel=channel, template=template or None,
        subject=(subject or None) if text.strip() and channel == "email" else None,
        body=text if text.strip() else None, attachments=(attachments or []) if channel == "email" else [],
        task_id=chosen, idempotency_key=f"web:{idempotency_key}"), page.user))
    if isinstance(got, Refusal):
        with runtime_of(request).read_sessions() as session:
            form = reply_form(request, session, case, channel=channel, template=template, subject=subject,
                              body=text, attachments=attachments or [], task_id=chosen, error=got.message)
        form.idempotency_key = idempotency_key  # the same attempt: fixing it and sending again queues one
        return _panel(request, page, form, status_code=got.status)
    log.info("reply %s (%s) queued on case %s by %s%s", got.id, got.channel, got.case_ref, page.user.name,
             " (a repeat of the same form: nothing new)" if got.duplicate else "")
    return see_other(request, f"/cases/{got.case_ref}?done=reply_queued#timeline")


@router.post("/outbox/{outbound_id}/{action}")
def outbox_action(request: Request, outbound_id: str, action: Literal["retry", "confirm"], page: Page,
                  reason: Annotated[str, Form(max_length=2000)] = "",
                  back: Annotated[Literal["case", "ops"], Form()] = "case") -> Response:
    """Send a failed, unconfirmed, bounced or held message again, or confirm an unconfirmed one
    went (the REST route's function: the same access rule and audit event)."""
    got = attempt(lambda: outbound_routes.outbox_action(request, outbound_id, action, page.user, reason=reason))
    if isinstance(got, Refusal):
        raise PageError(got.status, got.message)
    done = "outbound_retried" if action == "retry" else "outbound_confirmed"
    if back == "ops":
        return see_other(request, f"/ops?done={done}#outbound-title")
    return see_other(request, f"/cases/{got.case_ref}?done={done}#outbound-attention")
