"""The FastAPI application: REST under /api/v1, /health. OpenAPI at /docs."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.auth import Principal, current_user, get_runtime, require_roles
from api.search_routes import router as search_router
from api.triage_routes import router as triage_router
from api.wiring import Runtime
from casestore import cases, items, users
from casestore.errors import CaseStoreError, NotFound
from classify.errors import ClassifyError
from connectors.metrics import REGISTRY
from connectors.runner import routers
from ingest.errors import IngestError
from ingest.intake import CHANNELS, TRUSTED_BY, make_raw_item, publish_raw

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class ItemAccepted(BaseModel):
    item_id: str
    idempotency_key: str
    duplicate: bool
    status_url: str


def create_app(rt: Runtime, *, health_extra: Any = None) -> FastAPI:
    app = FastAPI(title="casework", version="0.1.0",
                  description="Case-management intake. Every route but /health needs a bearer token.")
    app.state.runtime = rt
    app.state.health_extra = health_extra

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        """The one place an error's ``http_status`` becomes a response."""
        code = int(getattr(exc, "http_status", 500))
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=code)

    for root in (IngestError, CaseStoreError, ClassifyError):
        app.add_exception_handler(root, domain_error)

    app.include_router(triage_router)
    app.include_router(search_router)
    connector_settings = rt.settings.connectors
    for router in routers(connector_settings, bus=rt.bus, blobs=rt.blobs, data_dir=rt.settings.data_dir):
        app.include_router(router)  # webhooks and forms: each checks its own signature or CSRF token

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics(user: Annotated[Principal, Depends(current_user)]) -> str:
        """Prometheus text format: connector counters (received, duplicates, failed, lag, up)."""
        return REGISTRY.prometheus()

    @app.get("/health", tags=["health"])
    def health(request: Request) -> dict[str, Any]:
        runtime = get_runtime(request)
        report: dict[str, Any] = {"status": "ok"}
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("select 1"))
            report["db"] = "ok"
        except Exception as exc:
            report["status"], report["db"] = "degraded", f"error: {type(exc).__name__}"
        report["bus"] = runtime.settings.bus.url.split("://")[0].rstrip(":")
        report["connectors"] = REGISTRY.health()
        if REGISTRY.degraded():
            report["status"] = "degraded"
        extra = request.app.state.health_extra
        if extra is not None:
            report.update(extra())
            if any(v == "stopped" for v in report.get("pipeline", {}).values()):
                report["status"] = "degraded"
        return report

    @app.post("/api/v1/items", status_code=status.HTTP_202_ACCEPTED, response_model=ItemAccepted, tags=["items"])
    async def upload_item(
        request: Request,
        user: Annotated[Principal, require_roles("integration", "admin", "supervisor", "agent")],
        file: Annotated[UploadFile, File(description="the document")],
        channel: Annotated[str, Form(description=f"one of {', '.join(CHANNELS)}")] = "api",
        source_id: Annotated[str | None, Form(description="the sender system's id; makes re-sends idempotent")] = None,
        metadata: Annotated[
            str, Form(description="JSON object of strings: sender_email, subject, doc_type, team")
        ] = "{}",
    ) -> ItemAccepted:
        runtime = get_runtime(request)
        if channel not in CHANNELS:
            raise HTTPException(422, f"unknown channel {channel!r}: use one of {', '.join(CHANNELS)}")
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise HTTPException(422, f"metadata is not valid JSON: {exc}") from None
        except RecursionError:
            raise HTTPException(422, "metadata is nested too deeply: send a flat JSON object of strings") from None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise HTTPException(422, "metadata must be a JSON object whose values are strings")
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"upload is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
        if not data:
            raise HTTPException(422, "the uploaded file is empty (0 bytes)")
        meta["uploaded_by"] = user.name  # who, as authenticated: not what the caller says
        meta.pop(TRUSTED_BY, None)
        if user.role == "integration":  # a system's account: its customer_id may identify the customer
            meta[TRUSTED_BY] = f"api:{user.name}"
        raw = make_raw_item(blobs=runtime.blobs, data=data, channel=channel,
                            filename=file.filename, content_type=file.content_type,
                            source=f"api:{user.name}", source_id=source_id, metadata=meta)
        with runtime.read_sessions() as session:
            known = items.outcomes(session, item_ids=[raw.item_id]).get(raw.item_id, {})
        duplicate = known.get("outcome") not in (None, "failed")
        if not duplicate:
            publish_raw(runtime.bus, [raw])
        return ItemAccepted(item_id=raw.item_id, idempotency_key=raw.idempotency_key, duplicate=duplicate,
                            status_url=f"/api/v1/items/{raw.item_id}")

    @app.get("/api/v1/items/{item_id}", tags=["items"])
    def get_item(request: Request, item_id: str, user: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        runtime = get_runtime(request)
        with runtime.read_sessions() as session:
            view = items.item_view(session, item_id=item_id)
            ref = view.get("case_ref")
            if user.role == "integration":
                visible = view.get("source") == f"api:{user.name}"  # an integration sees what it uploaded
            elif ref:
                visible = _visible(session, user, ref)
            else:
                visible = True  # triage, noise and failures: the shared intake queue
            if not visible:
                raise HTTPException(404, f"no item {item_id} (or not visible to you)")
        return view

    @app.get("/api/v1/cases/{ref}", tags=["cases"])
    def get_case(request: Request, ref: str, user: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        runtime = get_runtime(request)
        with runtime.read_sessions() as session:
            if not _visible(session, user, ref):
                raise HTTPException(404, f"no case {ref} (or not visible to your teams)")
            return cases.case_folder(session, ref=ref)

    return app


def _visible(session: Any, user: Principal, ref: str) -> bool:
    try:
        case = cases.get_case(session, ref=ref)
    except NotFound:
        return False
    return users.can_see_case(user, case)  # type: ignore[arg-type]
