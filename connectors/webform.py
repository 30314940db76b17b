"""Web forms: definitions from settings, served at ``GET /forms/{form_id}``, accepted at ``POST``.

Protection, in the order applied to a POST: a rate limit per client (``rate_limit`` posts per
``rate_window_s``; 429; the client is the connecting address, or the one the server's trusted
proxies name: ``serve.trusted_proxies``, applied by the HTTP server, so a forwarded-for header from
anyone else changes nothing), a body limit (``max_body_bytes``; 413) and a per-file limit
(``max_file_bytes``; 422 on that field), a signed, time-limited CSRF token rendered into the
form (``HMAC-SHA256(secret, form_id.time.nonce)``; missing, forged or older than
``token_ttl_s``: 403) and a honeypot field hidden from people (filled in: answered as if
accepted, nothing stored, counted as failed).

A valid submission becomes one ``webform`` item. Its fields are kept as structured data: in the
item's metadata (``form.<field>``, plus ``form_id``, ``submission_id``, ``case_type``, ``doc_type``,
``team``, and any ``metadata_key`` a field names, e.g. ``sender_email``) and in a JSON body
(``{form_id, submission_id, submitted_at, fields, files}``). With file uploads the item is one
MIME document: a text summary, ``fields.json`` and each file. The submission id is the token's
nonce, so the same rendered form sent twice (a double click, a browser re-post) is one item
(key ``webform:<form_id>:<nonce>``), published once.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from connectors.emit import Emitter
from connectors.http_body import CLOSE, form_of, read_limited
from connectors.metrics import Registry
from connectors.mime import Attachment, pack
from connectors.settings import FormDefinition, WebformSettings
from connectors.state import StateStore
from connectors.webform_html import render_form, render_message, render_thanks
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.intake import TRUSTED_BY
from ingest.messages import utcnow

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
META_VALUE_MAX = 1000


class CsrfTokens:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self.key = (secret or secrets.token_hex(32)).encode()
        self.ttl_s = ttl_s

    def _sig(self, form_id: str, ts: int, nonce: str) -> str:
        return hmac.new(self.key, f"{form_id}.{ts}.{nonce}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, form_id: str) -> str:
        ts, nonce = int(time.time()), secrets.token_urlsafe(12)
        return f"{ts}.{nonce}.{self._sig(form_id, ts, nonce)}"

    def check(self, form_id: str, token: str) -> str | None:
        """The token's nonce (the submission id) if it is genuine and fresh; else None."""
        try:
            ts_text, nonce, sig = token.split(".")
            ts = int(ts_text)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sig(form_id, ts, nonce)):
            return None
        if not 0 <= time.time() - ts <= self.ttl_s:
            return None
        return nonce


class RateLimiter:
    """At most ``limit`` events per ``window_s`` per client (sliding window, in memory)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._events: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events.setdefault(client, collections.deque())
            while events and now - events[0] > self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            if len(self._events) > 10_000:  # forget idle clients
                for key in [k for k, v in self._events.items() if not v or now - v[-1] > self.window_s]:
                    del self._events[key]
            return True


def validate(form: FormDefinition, values: dict[str, str], files: dict[str, tuple[str, str, bytes]],
             max_file_bytes: int) -> dict[str, str]:
    errors: dict[str, str] = {}
    for f in form.fields:
        label = f.label or f.name
        if f.type == "file":
            got = files.get(f.name)
            if f.required and not got:
                errors[f.name] = f"{label} is required"
            elif got and len(got[2]) > max_file_bytes:
                errors[f.name] = f"{label} is over {max_file_bytes // (1024 * 1024) or max_file_bytes} " \
                                 f"{'MiB' if max_file_bytes >= 1024 * 1024 else 'bytes'}"
            continue
        value = values.get(f.name, "").strip()
        if f.required and not value:
            errors[f.name] = f"{label} is required"
        elif len(value) > f.max_length:
            errors[f.name] = f"{label} is longer than {f.max_length} characters"
        elif value and f.type == "email" and not _EMAIL.match(value):
            errors[f.name] = f"{label} is not an email address"
        elif value and f.type == "select" and value not in f.options:
            errors[f.name] = f"{label}: choose one of the options"
        elif value and f.type == "date" and not _DATE.match(value):
            errors[f.name] = f"{label} must be a date (YYYY-MM-DD)"
        elif value and f.type == "number":
            try:
                float(value)
            except ValueError:
                errors[f.name] = f"{label} must be a number"
    return errors


def build_submission(form: FormDefinition, submission_id: str, values: dict[str, str],
                     files: dict[str, tuple[str, str, bytes]]) -> tuple[bytes, str, str, dict[str, str]]:
    """(bytes, filename, content type, metadata) of one accepted submission."""
    fields = {f.name: values.get(f.name, "").strip() for f in form.fields if f.type != "file"}
    file_list = [{"field": k, "filename": name, "content_type": ctype, "size": len(data)}
                 for k, (name, ctype, data) in files.items()]
    doc = {"form_id": form.id, "submission_id": submission_id, "submitted_at": utcnow().isoformat(),
           "case_type": form.case_type, "fields": fields, "files": file_list}
    body = json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")
    meta = {"form_id": form.id, "submission_id": submission_id, "subject": form.title}
    if form.case_type:
        meta["case_type"] = meta["doc_type"] = form.case_type
    if form.team:
        meta["team"] = form.team
    for f in form.fields:
        value = fields.get(f.name) or (files[f.name][0] if f.name in files else "")
        if value:
            meta[f"form.{f.name}"] = value[:META_VALUE_MAX]
            if f.metadata_key:
                meta[f.metadata_key] = value[:META_VALUE_MAX]
    meta.pop(TRUSTED_BY, None)  # what a member of the public typed is never trusted metadata
    if not files:
        return body, f"form-{form.id}-{submission_id}.json", "application/json", meta
    summary = "\n".join(f"{f.label or f.name}: {fields.get(f.name, '')}" for f in form.fields if f.type != "file")
    data = pack(subject=form.title, message_id=f"{submission_id}@{form.id}.webform", body=summary,
                json_body=body, attachments=[Attachment(n, c, d) for n, c, d in files.values()])
    return data, f"form-{form.id}-{submission_id}.eml", "message/rfc822", meta


def webform_router(settings: WebformSettings, *, bus: Bus, blobs: BlobStore, state: StateStore,
                   registry: Registry | None = None) -> APIRouter:
    router = APIRouter(tags=["web forms"])
    forms = {f.id: f for f in settings.forms}
    tokens = CsrfTokens(settings.secret, settings.token_ttl_s)
    limiter = RateLimiter(settings.rate_limit, settings.rate_window_s)
    emitter = Emitter("webform", bus=bus, blobs=blobs, state=state, registry=registry, kind="webform")
    emitter.stats.set_state("running")

    def get_form(form_id: str) -> FormDefinition:
        form = forms.get(form_id)
        if form is None:
            raise HTTPException(404, f"no form {form_id!r}")
        return form

    def client_of(request: Request) -> str:
        # The HTTP server has already replaced the peer with the forwarded client when, and only
        # when, the peer is one of the configured trusted proxies (serve.trusted_proxies).
        return request.client.host if request.client else "unknown"

    @router.get("/forms/{form_id}", response_class=HTMLResponse, summary="A web form, as HTML")
    def show_form(form_id: str) -> HTMLResponse:
        form = get_form(form_id)
        return HTMLResponse(render_form(form, token=tokens.issue(form.id), honeypot=settings.honeypot_field),
                            headers={"Cache-Control": "no-store"})

    @router.post("/forms/{form_id}", response_class=HTMLResponse, summary="Send a web form")
    async def submit_form(form_id: str, request: Request) -> HTMLResponse:
        form = get_form(form_id)
        client = client_of(request)
        if not limiter.allow(client):
            emitter.stats.record_failed(f"rate limit: {client}")
            log.warning("webform: %s over the rate limit for %s", client, form_id)
            return HTMLResponse(render_message(form.title, "Too many submissions; please try again later."),
                                status_code=429, headers={"Retry-After": str(int(settings.rate_window_s))})
        body = await read_limited(request, settings.max_body_bytes)
        if body is None:
            emitter.stats.record_failed("body over max_body_bytes")
            return HTMLResponse(render_message(form.title, "What you sent is too large."), status_code=413,
                                headers=CLOSE)
        values, files = await _parse(request, body)
        if values.get(settings.honeypot_field):
            emitter.stats.record_failed("honeypot filled in")
            log.info("webform: honeypot filled in on %s by %s; dropped", form_id, client)
            return HTMLResponse(render_thanks(form, "-"))
        submission_id = tokens.check(form.id, values.get("_csrf", ""))
        if submission_id is None:
            emitter.stats.record_failed("CSRF token missing, forged or expired")
            return HTMLResponse(render_form(form, token=tokens.issue(form.id), honeypot=settings.honeypot_field,
                                            values=values, notice="This form has expired; please send it again."),
                                status_code=403)
        errors = validate(form, values, files, settings.max_file_bytes)
        if errors:
            return HTMLResponse(render_form(form, token=values["_csrf"], honeypot=settings.honeypot_field,
                                            values=values, errors=errors), status_code=422)
        data, filename, ctype, meta = build_submission(form, submission_id, values, files)
        meta["client"] = client
        emitted = await run_in_threadpool(lambda: emitter.emit(
            data, channel="webform", filename=filename, source=f"webform:{form.id}",
            source_id=f"{form.id}:{submission_id}", content_type=ctype, metadata=meta))
        return HTMLResponse(render_thanks(form, emitted.item.item_id[:8].upper()))

    return router


async def _parse(request: Request, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    form = await form_of(request, body, max_files=20, max_fields=200)
    values: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            if data:  # an empty file input sends a part with no bytes: nothing was chosen
                files[key] = (value.filename or key, value.content_type or "application/octet-stream", data)
        else:
            values[key] = value
    return values, files
