"""The FastAPI application: REST under /api/v1, /health. OpenAPI at /docs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from api.admin_routes import router as admin_router
from api.auth import Principal, authenticate_token, bearer, current_user, get_runtime, require_roles
from api.body_limits import BodyLimits, BodyRule
from api.case_list_routes import router as case_list_router
from api.get_next_fast import GetNextFast, domain_error_response
from api.metrics import metrics_registry
from api.notification_routes import router as notification_router
from api.outbound_routes import router as outbound_router
from api.outbound_routes import status_router
from api.queue_routes import add_get_next
from api.queue_routes import router as queue_router
from api.search_routes import router as search_router
from api.triage_routes import router as triage_router
from api.upload_intake import GroupPublisher, UploadAdmission, release_upload_slot
from api.web import install_workbench
from api.web.session_auth import COOKIE as SESSION_COOKIE
from api.web.session_auth import session_may_post
from api.wiring import Runtime
from api.work_routes import router as work_router
from casestore import access, items
from casestore.errors import CaseStoreError
from casestore.search import outbox as search_outbox
from casestore.token_use import LastUseBuffer
from casestore.work.folder import CaseFolder, case_folder
from classify.errors import ClassifyError
from connectors.metrics import REGISTRY
from connectors.runner import routers
from ingest.errors import IngestError
from ingest.intake import CHANNELS, TRUSTED_BY, make_raw_item, upload_key_namespace, upload_source
from ingest.messages import RawItem

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_API_BODY_BYTES = 2 * 1024 * 1024  # a JSON request to any other /api/ route
MAX_SOURCE_ID_CHARS = 500
UPLOAD_THREADS = 4  # uploads storing their blob at once (each a thread: fsync, a store read)


class ItemAccepted(BaseModel):
    item_id: str
    idempotency_key: str
    duplicate: bool
    status_url: str


def _search_outbox(rt: Runtime) -> dict[str, Any]:
    """How many index updates wait in the search outbox (casestore.search.outbox)."""
    try:
        with rt.read_sessions() as session:
            found = search_outbox.depth(session)
    except Exception as exc:
        return {"error": type(exc).__name__}
    return {"pending": found.pending, "failing": found.failing, "oldest_age_s": round(found.oldest_age_s, 1)}


class CaseworkApp(FastAPI):
    """FastAPI with get-next's fast path in front of everything, FastAPI's own entry included
    (``api.get_next_fast``: its telemetry check alone was ~5 % of a get-next's CPU)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.__dict__.get("_front")
        if front is None:
            front = self.__dict__["_front"] = GetNextFast(self._framework, self.state)
        await front(scope, receive, send)

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(rt: Runtime, *, health_extra: Any = None) -> FastAPI:
    app = CaseworkApp(title="casework", version="0.1.0", docs_url=None, redoc_url=None,  # served locally: api.web
                  description="Case-management intake. Every route but /health needs a bearer token.")
    app.state.runtime = rt
    # token and size checked from the headers, before FastAPI reads (and spools) a body
    app.add_middleware(BodyLimits, authenticate=lambda token: authenticate_token(rt, token),
                       session_cookie=SESSION_COOKIE, check_session=lambda c, csrf: session_may_post(rt, c, csrf),
                       rules=[BodyRule("/api/v1/items", MAX_UPLOAD_BYTES + 1024 * 1024),
                              BodyRule("/api/", MAX_API_BODY_BYTES)])
    # outermost: an upload waiting for its slot has not been authenticated or read yet (api.upload_intake)
    app.add_middleware(UploadAdmission, path="/api/v1/items", slots=rt.settings.serve.upload_slots,
                       session_cookie=SESSION_COOKIE)
    app.state.health_extra = health_extra
    app.state.last_use = LastUseBuffer(interval_s=rt.settings.auth.last_used_flush_s)  # see api.auth

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        """The one place an error's ``http_status`` becomes a response (get-next's fast path renders
        its own with the same function)."""
        return domain_error_response(exc)

    for root in (IngestError, CaseStoreError, ClassifyError):
        app.add_exception_handler(root, domain_error)

    add_get_next(app)  # first: the hottest route, matched before any included router's (api.queue_routes)
    app.include_router(triage_router)
    app.include_router(admin_router)
    app.include_router(search_router)
    app.include_router(queue_router)
    app.include_router(work_router)
    app.include_router(case_list_router)
    app.include_router(notification_router)
    install_workbench(app)  # the web pages at /, their sign-in, /static, /assets, /docs and /redoc
    app.include_router(outbound_router)
    app.include_router(status_router(rt.settings))  # signed: refuses everything while no Twilio auth_token is set
    connector_settings = rt.settings.connectors
    for router in routers(connector_settings, bus=rt.bus, blobs=rt.blobs, data_dir=rt.settings.data_dir):
        app.include_router(router)  # webhooks and forms: each checks its own signature or CSRF token

    registry = metrics_registry(rt)
    app.state.metrics_registry = registry

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics(user: Annotated[Principal, Depends(current_user)]) -> Response:
        """Prometheus text format: connectors, pipeline stages (items, failures, retries, batch
        durations), consumer lag per stage, dead letters and the triage backlog (api/metrics.py and
        docs/operations.md say what each means).  A scrape listener without a token:
        ``CASEWORK_METRICS__PORT``."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["health"])
    def health(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
               ) -> JSONResponse:
        """Without a token: ``{"status": "ok"|"degraded"}`` only. With one: the database, bus, pipeline
        and connector details too. 503 when the store cannot be reached, else 200."""
        runtime = get_runtime(request)
        report: dict[str, Any] = {"status": "ok"}
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("select 1"))
            report["db"] = "ok"
        except Exception as exc:
            report["status"], report["db"] = "degraded", f"error: {type(exc).__name__}"
        code = 200 if report["db"] == "ok" else 503
        if code == 200:
            report["search_outbox"] = _search_outbox(runtime)
            if report["search_outbox"].get("failing"):  # the index is not taking updates
                report["status"] = "degraded"
        report["bus"] = runtime.settings.bus.url.split("://")[0].rstrip(":")
        report["connectors"] = REGISTRY.health()
        if REGISTRY.degraded():
            report["status"] = "degraded"
        extra = request.app.state.health_extra
        if extra is not None:
            report.update(extra())
            if any(v == "stopped" for v in report.get("pipeline", {}).values()) or \
                    "stopped" in (report.get("outbox_sender"), report.get("search_outbox_loop")):
                report["status"] = "degraded"
        if credentials is None or code != 200:  # details are for token holders (checked in the store)
            return JSONResponse({"status": report["status"]}, status_code=code)
        if credentials.scheme.lower() != "bearer" or authenticate_token(runtime, credentials.credentials) is None:
            raise HTTPException(401, "invalid, revoked, expired or disabled token",  # not a silent downgrade
                                headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse(report, status_code=code)

    publisher = GroupPublisher(rt.bus)
    upload_slots = asyncio.Semaphore(UPLOAD_THREADS)

    @app.post("/api/v1/items", status_code=status.HTTP_202_ACCEPTED, response_model=ItemAccepted, tags=["items"])
    async def upload_item(
        request: Request,
        user: Annotated[Principal, require_roles("integration", "admin", "supervisor", "agent")],
        file: Annotated[UploadFile, File(description="the document")],
        channel: Annotated[str, Form(description=f"one of {', '.join(CHANNELS)}")] = "api",
        source_id: Annotated[str | None, Form(
            description="your system's id for the document; re-sending it is idempotent. Keys are yours alone: "
            "the same id from another account is another item")] = None,
        metadata: Annotated[
            str, Form(description="JSON object of strings: sender_email, subject, doc_type, team, case_ref "
                      "(a case you may see; otherwise 404), customer_id (integration accounts only)")
        ] = "{}",
    ) -> ItemAccepted:
        """Accept a document for the pipeline.  It is filed only where its uploader may file
        (casestore.access): naming a case you may not see answers 404 as for a missing case, and a
        document the matcher would file into such a case goes to triage instead."""
        runtime = get_runtime(request)
        if channel not in CHANNELS:
            raise HTTPException(422, f"unknown channel {channel!r}: use one of {', '.join(CHANNELS)}")
        if source_id is not None and len(source_id) > MAX_SOURCE_ID_CHARS:
            raise HTTPException(422, f"source_id is over {MAX_SOURCE_ID_CHARS} characters; send a shorter id")
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise HTTPException(422, f"metadata is not valid JSON: {exc}") from None
        except RecursionError:
            raise HTTPException(422, "metadata is nested too deeply: send a flat JSON object of strings") from None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise HTTPException(422, "metadata must be a JSON object whose values are strings")
        team = meta.get("team", "").strip() or None
        if not access.may_assign_team(user, team):
            raise HTTPException(403, f"you may not open cases in team {team!r}: name one of your teams "
                                     f"({', '.join(user.teams) or 'you have none'}) or leave team out")
        if meta.get("case_ref", "").strip():
            with runtime.read_sessions() as session:  # the same answer for a missing and a hidden case
                access.visible_case(session, user, ref=meta["case_ref"])
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"upload is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
        if not data:
            raise HTTPException(422, "the uploaded file is empty (0 bytes)")
        meta["uploaded_by"] = user.name  # who, as authenticated: not what the caller says
        meta.pop(TRUSTED_BY, None)
        if user.role == "integration":  # a system's account: its customer_id may identify the customer
            meta[TRUSTED_BY] = f"api:{user.name}"

        def store() -> tuple[RawItem, bool]:  # blocking (fsync, a store read): not on the event loop
            raw = make_raw_item(blobs=runtime.blobs, data=data, channel=channel,
                                filename=file.filename, content_type=file.content_type,
                                source=upload_source(user.name), source_id=source_id, metadata=meta,
                                key_namespace=upload_key_namespace(user.name))  # keys are the uploader's own
            with runtime.read_sessions() as session:
                known = items.outcomes(session, item_ids=[raw.item_id]).get(raw.item_id, {})
            return raw, known.get("outcome") not in (None, "failed")

        async with upload_slots:  # a few at a time: more only queue for the bus and crowd out searches
            raw, duplicate = await run_in_threadpool(store)
        release_upload_slot(request.scope)  # the next upload may be read while this one waits for the bus
        if not duplicate:
            await publisher.publish(raw)  # with the other uploads waiting: one bus commit (api.upload_intake)
        return ItemAccepted(item_id=raw.item_id, idempotency_key=raw.idempotency_key, duplicate=duplicate,
                            status_url=f"/api/v1/items/{raw.item_id}")

    @app.get("/api/v1/items/{item_id}", tags=["items"])
    def get_item(request: Request, item_id: str, user: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        runtime = get_runtime(request)
        with runtime.read_sessions() as session:
            if not access.item_visible(session, user, item_id=item_id):  # casestore.access rule 4
                raise HTTPException(404, f"no item {item_id} (or not visible to you)")
            return items.item_view(session, item_id=item_id)

    @app.get("/api/v1/cases/{ref}", tags=["cases"], response_model=CaseFolder)
    def get_case(request: Request, ref: str, user: Annotated[Principal, Depends(current_user)]) -> CaseFolder:
        """The case folder: customer, documents, notes, audit trail, and its work (type, stage, status,
        urgency, owner, SLA clocks, tasks with checklists and codes, history)."""
        runtime = get_runtime(request)
        with runtime.read_sessions() as session:
            access.visible_case(session, user, ref=ref)  # NotFound (404) alike for missing and hidden
            return case_folder(session, ref=ref)

    return app

