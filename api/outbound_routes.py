"""Outbound correspondence over REST: replies from a case, the outbox, the mailroom's letters,
and Twilio's signed delivery status callbacks.

Thin over ``casestore.outbound`` (the same services back `casework case reply`, `casework
outbox` and `casework letters`).  Whoever replies must see the case (casestore.access): a
hidden case answers 404 like a missing one; so do its messages and letters.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from api.auth import Principal, get_runtime, require_roles
from api.outbound_parts import outbox_policy, templates
from api.params import MAX_DB_INT, DocumentId
from api.search_follow import index_now
from api.settings import Settings
from casestore import access
from casestore.outbound import operations, services
from casestore.outbound.schemas import DraftView, OutboundView, QueuedView
from casestore.outbound.templates import Templates
from casestore.outbound.transports import status_callback_for
from casestore.search import outbox as search_outbox
from connectors.http_body import form_of, read_limited, refuse

log = logging.getLogger(__name__)

router = APIRouter(tags=["replies"])
Agent = Annotated[Principal, require_roles("agent", "supervisor", "admin")]
MAX_STATUS_CALLBACK_BYTES = 64 * 1024


class ReplyRequest(BaseModel):
    channel: Literal["email", "sms", "letter"] = "email"
    template: str | None = Field(default=None, description="a template name (see .../replies/templates)")
    fields: dict[str, str] = Field(default_factory=dict, description="values the template uses, e.g. decision")
    subject: str | None = Field(default=None, max_length=300, description="email: the subject, edited")
    body: str | None = Field(default=None, max_length=100_000,
                             description="the text as edited after the preview; wins over the template")
    to: str | None = Field(default=None, description="email or SMS: another recipient known to the case; default: "
                           "the customer (else whoever wrote in last)")
    attachments: list[DocumentId] = Field(default_factory=list, max_length=100,
                                          description="document ids of this case's folder (email)")
    reply_to_item: str | None = Field(default=None, description="email: the item answered; default: the latest "
                                      "inbound email of the case")
    idempotency_key: str | None = Field(default=None, max_length=150,
                                        description="a key of yours: sending it again queues nothing new")
    task_id: int | None = Field(default=None, ge=1, le=MAX_DB_INT,
                                description="the open task of this case the reply is sent for "
                                "(a task that requires a message to the customer counts it)")


class TemplateOut(BaseModel):
    name: str
    channel: str
    case_type: str


def templates_for(request: Request) -> Templates:
    app_state = request.app.state
    if getattr(app_state, "outbound_templates", None) is None:
        app_state.outbound_templates = templates(get_runtime(request).settings)
    found: Templates = app_state.outbound_templates
    return found


@router.get("/api/v1/cases/{ref}/replies/templates", response_model=list[TemplateOut])
def list_templates(request: Request, ref: str, user: Agent,
                   channel: Literal["email", "sms", "letter"] | None = None) -> list[TemplateOut]:
    """The templates an agent may choose for this case (its case type's, then the defaults)."""
    with get_runtime(request).read_sessions() as session:
        case = access.visible_case(session, user, ref=ref)
        case_type = case.case_type
    return [TemplateOut(name=t.name, channel=t.channel, case_type=t.case_type)
            for t in templates_for(request).available(case_type=case_type, channel=channel)]


@router.post("/api/v1/cases/{ref}/replies/preview", response_model=DraftView)
def preview_reply(request: Request, ref: str, body: ReplyRequest, user: Agent) -> DraftView:
    """The message exactly as it would be queued now, and anything that would stop it; writes nothing."""
    rt = get_runtime(request)
    with rt.read_sessions() as session:
        draft, problems = services.preview(
            session, case_ref=ref, channel=body.channel, actor=user.name, policy=outbox_policy(rt.settings),
            templates=templates_for(request), template=body.template, fields=body.fields, subject=body.subject,
            body=body.body, to=body.to, attachments=body.attachments, reply_to_item=body.reply_to_item, viewer=user)
    return DraftView.of(draft, problems)


@router.post("/api/v1/cases/{ref}/replies", response_model=QueuedView, status_code=status.HTTP_201_CREATED)
def send_reply(request: Request, ref: str, body: ReplyRequest, user: Agent) -> QueuedView:
    """Queue the reply; the sender delivers it after this commit.  It is in the case folder (direction
    out) at once, with its delivery state.  422: what to fix (no address, a flagged address, a
    template problem); 429: the daily limit for this recipient is reached."""
    rt = get_runtime(request)
    key = f"api:{user.name}:{body.idempotency_key}" if body.idempotency_key else None
    with rt.sessions() as session, session.begin():
        queued = services.queue_message(
            session, case_ref=ref, channel=body.channel, actor=user.name, policy=outbox_policy(rt.settings),
            templates=templates_for(request), template=body.template, fields=body.fields, subject=body.subject,
            body=body.body, to=body.to, attachments=body.attachments, reply_to_item=body.reply_to_item, viewer=user,
            idempotency_key=key, task_id=body.task_id)
        outbox_ids = search_outbox.written_in(session)
    return QueuedView(id=queued.id, item_id=queued.item_id, case_ref=queued.case_ref, channel=queued.channel,
                      state=queued.state, to=queued.recipient, duplicate=queued.duplicate,
                      search_index=index_now(rt, outbox_ids, what=f"outbound {queued.item_id}"))


@router.get("/api/v1/cases/{ref}/replies", response_model=list[OutboundView])
def case_replies(request: Request, ref: str, user: Agent) -> list[OutboundView]:
    """The messages sent (or waiting to go) from this case, newest first."""
    with get_runtime(request).read_sessions() as session:
        case = access.visible_case(session, user, ref=ref)
        return operations.list_messages(session, viewer=user, case_ref=case.ref, limit=1000)


@router.get("/api/v1/outbox", response_model=list[OutboundView], tags=["outbox"])
def outbox(request: Request, user: Agent, state: Annotated[list[str] | None, Query()] = None,
           channel: Literal["email", "sms", "letter"] | None = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OutboundView]:
    """Outbound messages of the cases you may see, newest first; ``state=failed&state=unconfirmed``
    is what needs a person."""
    with get_runtime(request).read_sessions() as session:
        return operations.list_messages(session, viewer=user, states=state or (), channel=channel, limit=limit)


@router.post("/api/v1/outbox/{outbound_id}/{action}", response_model=OutboundView, tags=["outbox"])
def outbox_action(request: Request, outbound_id: str, action: Literal["retry", "confirm"], user: Agent,
                  reason: str = "") -> OutboundView:
    """``retry``: send a failed, unconfirmed, bounced or held message again; ``confirm``: an
    unconfirmed message did go (found in the relay's log)."""
    fn = operations.retry_message if action == "retry" else operations.confirm_message
    with get_runtime(request).sessions() as session, session.begin():
        return fn(session, outbound_id=outbound_id, actor=user.name, reason=reason, viewer=user)


@router.get("/api/v1/letters", response_model=list[OutboundView], tags=["letters"])
def letters(request: Request, user: Agent,
            state: Annotated[list[Literal["to_print", "printed", "posted"]] | None, Query()] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OutboundView]:
    """The mailroom's queue: letters to print, oldest first (``state=printed``: waiting to be posted).
    Mailroom staff see the letters of the cases they may see: give them the supervisor role or the
    teams whose post they handle."""
    with get_runtime(request).read_sessions() as session:
        return operations.list_letters(session, viewer=user, states=state or ["to_print"], limit=limit)


@router.get("/api/v1/letters/{outbound_id}/pdf", tags=["letters"], response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def letter_pdf(request: Request, outbound_id: str, user: Agent) -> Response:
    """The letter's PDF, to print."""
    rt = get_runtime(request)
    with rt.read_sessions() as session:
        sha = operations.letter_pdf(session, outbound_id=outbound_id, viewer=user)
    with rt.blobs.open(sha) as fh:
        data = fh.read()
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="letter-{outbound_id[:8]}.pdf"'})


@router.post("/api/v1/letters/{outbound_id}/{action}", response_model=OutboundView, tags=["letters"])
def mark_letter(request: Request, outbound_id: str, action: Literal["printed", "posted"], user: Agent) -> OutboundView:
    """The mailroom printed or posted the letter (recorded with who and when in the case's audit)."""
    with get_runtime(request).sessions() as session, session.begin():
        return operations.mark_letter(session, outbound_id=outbound_id, action=action, actor=user.name, viewer=user)


class StatusAck(BaseModel):
    state: str | None


def status_router(settings: Settings) -> APIRouter:
    """``POST /webhooks/twilio/status``: Twilio's signed delivery status callback for our SMS."""
    webhooks = APIRouter(tags=["webhooks"])
    token = settings.connectors.twilio.auth_token
    base = settings.outbound.sms_status_callback_url

    @webhooks.post("/webhooks/twilio/status", response_model=StatusAck,
                   summary="Twilio SMS delivery status callback (X-Twilio-Signature checked)")
    async def twilio_status(request: Request) -> StatusAck:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not token or not signature:
            raise refuse(403, "X-Twilio-Signature missing (or no auth_token configured)")
        raw = await read_limited(request, MAX_STATUS_CALLBACK_BYTES)
        if raw is None:
            raise refuse(413, f"a status callback is under {MAX_STATUS_CALLBACK_BYTES} bytes; this one is not")
        form = await form_of(request, raw)
        params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        outbound_id = request.query_params.get("outbound")
        url = status_callback_for(base, outbound_id) if base and outbound_id else (base or str(request.url))
        if not RequestValidator(token).validate(url, params, signature):
            log.warning("twilio status: refused a callback with a wrong signature from %s",
                        request.client.host if request.client else "?")
            raise HTTPException(403, "X-Twilio-Signature not valid for this URL")
        sid, state = params.get("MessageSid") or params.get("SmsSid"), params.get("MessageStatus")
        if not sid or not state:
            raise HTTPException(422, "a status callback has MessageSid and MessageStatus")
        rt = get_runtime(request)

        def record() -> str | None:
            with rt.sessions() as session, session.begin():
                return operations.record_sms_status(session, message_sid=sid, status=state, outbound_id=outbound_id,
                                                    error_code=params.get("ErrorCode"))

        result = await run_in_threadpool(record)
        if result is None:
            log.info("twilio status: %s is not one of our messages; ignored", sid)
        return StatusAck(state=result)

    return webhooks
