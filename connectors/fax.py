"""Fax: a provider's webhook, and a spool folder (HylaFAX ``recvq``, or where an email-to-fax
gateway saves its attachments). TIFF (G3/G4 or any other TIFF compression) and PDF only.

Webhook ``POST {path}``, signed with a shared secret: the header ``X-Casework-Signature`` (name
configurable) carries ``sha256=`` + the lowercase hex HMAC-SHA256 of the raw request body keyed
with ``secret``. Unsigned, or any request while no secret is set: 403 before the body is read;
a body over ``max_bytes`` (plus 1 MB for the form around it): 413, read no further; wrongly
signed: 403. Nothing is stored for any of them. The body is either ``multipart/form-data`` with
the document in ``file``, or a form or JSON object with ``media_url``, fetched through
``connectors.media_fetch``: https only, only from ``media_hosts`` when given (and under
``media_url_prefixes`` when given), never from a private, loopback or link-local address, with
basic auth ``media_username``/``media_password`` sent to ``media_hosts`` (or media_url's own host)
only. A media URL refused by those rules gets 422; one the provider could not deliver now, 502.
Other fields: ``fax_id`` (required; the idempotency key is ``fax:<fax_id>``), ``from`` (the
sender's number), ``to``, ``pages``. The answer is ``{"item_id", "duplicate"}``.

Spool: every complete ``.tif``/``.tiff``/``.pdf`` file is one item (key ``fax:sha256:...``); the
sender's TSI, which HylaFAX writes to the TIFF ``ImageDescription`` tag, becomes ``sender_phone``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from connectors.emit import Emitter
from connectors.folder import FolderWatcher, Taken
from connectors.http_body import form_of, read_limited, refuse
from connectors.media_fetch import FetchPolicy, MediaRefused, MediaUnavailable, fetch
from connectors.metrics import Registry
from connectors.settings import FaxSettings, WatchedFolder
from connectors.state import StateStore
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.errors import BadInput

log = logging.getLogger(__name__)

_TIFF_COMPRESSION = {"group3": "G3", "group4": "G4"}
FORM_OVERHEAD_BYTES = 1_000_000  # the multipart form around the document


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def describe_fax(data: bytes) -> dict[str, str]:
    """Kind, pages, compression and (TIFF) the sender's TSI; BadInput if not a TIFF or PDF."""
    if data[:4] == b"%PDF":
        return {"fax_format": "pdf"}
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise BadInput("a fax must be a TIFF or a PDF; these bytes are neither")
    try:
        with Image.open(io.BytesIO(data)) as img:
            meta = {"fax_format": "tiff", "fax_pages": str(getattr(img, "n_frames", 1)),
                    "fax_compression": _TIFF_COMPRESSION.get(str(img.info.get("compression")),
                                                             str(img.info.get("compression", "")))}
            tsi = str(img.tag_v2.get(270, "")).strip() if hasattr(img, "tag_v2") else ""
    except Exception as exc:
        raise BadInput(f"the fax TIFF cannot be read: {type(exc).__name__}: {exc}") from None
    if tsi and sum(c.isdigit() for c in tsi) >= 5:
        meta["sender_phone"] = tsi
    return meta


def fax_router(settings: FaxSettings, *, bus: Bus, blobs: BlobStore, state: StateStore,
               registry: Registry | None = None) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    emitter = Emitter("fax", bus=bus, blobs=blobs, state=state, registry=registry, kind="fax")
    emitter.stats.set_state("running")

    @router.post(settings.path, summary="Fax provider webhook (HMAC-SHA256 signature)")
    async def fax_inbound(request: Request) -> dict[str, Any]:
        given = request.headers.get(settings.signature_header, "")
        if not settings.secret or not given:  # refused before a byte of the body is read
            emitter.stats.record_failed("webhook signature missing")
            log.warning("fax: refused a webhook with a missing signature")
            raise refuse(403, f"{settings.signature_header} missing (or no secret configured)")
        body = await read_limited(request, settings.max_bytes + FORM_OVERHEAD_BYTES)
        if body is None:
            emitter.stats.record_failed("webhook body over max_bytes")
            raise refuse(413, f"fax over {settings.max_bytes} bytes")
        if not hmac.compare_digest(given.strip(), sign(settings.secret, body)):
            emitter.stats.record_failed("webhook signature wrong")
            log.warning("fax: refused a webhook with a wrong signature")
            raise HTTPException(403, f"{settings.signature_header} wrong")
        fields, data = await _payload(request, body)
        fax_id = str(fields.get("fax_id") or "").strip()
        if not fax_id:
            emitter.failed("webhook", "no fax_id")
            raise HTTPException(422, "fax_id is required (the provider's id of this fax)")
        known = state.seen(f"fax:{fax_id}")
        if known:
            emitter.stats.record_duplicate()
            return {"item_id": known, "duplicate": True}
        if data is None:
            url = str(fields.get("media_url") or "")
            if not url:
                raise HTTPException(422, "send the fax as a 'file' upload or give its 'media_url'")
            try:
                data = await run_in_threadpool(fetch_media, settings, url)
            except MediaRefused as exc:
                emitter.failed(f"fax {fax_id} media", exc)
                raise HTTPException(422, f"media_url refused, not fetched: {exc}") from None
            except MediaUnavailable as exc:
                emitter.failed(f"fax {fax_id} media", exc)
                raise HTTPException(502, f"could not fetch the fax from media_url: {exc}") from None
        if len(data) > settings.max_bytes:
            raise HTTPException(413, f"fax over {settings.max_bytes} bytes")
        try:
            meta = describe_fax(data)
        except BadInput as exc:
            emitter.failed(f"fax {fax_id}", exc)
            raise HTTPException(422, str(exc)) from None
        sender = str(fields.get("from") or "")
        meta.update({"sender_phone": sender or meta.get("sender_phone", ""), "to_phone": str(fields.get("to") or ""),
                     "subject": f"Fax from {sender or 'unknown sender'}"})
        if fields.get("pages"):
            meta["fax_pages"] = str(fields["pages"])
        if settings.team:
            meta["team"] = settings.team
        ext = ".pdf" if meta["fax_format"] == "pdf" else ".tif"
        fax_bytes = data
        emitted = await run_in_threadpool(lambda: emitter.emit(
            fax_bytes, channel="fax", filename=f"fax-{fax_id}{ext}", source=f"fax-webhook:{fax_id}",
            source_id=fax_id, content_type="application/pdf" if ext == ".pdf" else "image/tiff", metadata=meta))
        return {"item_id": emitted.item.item_id, "duplicate": emitted.duplicate}

    return router


async def _payload(request: Request, body: bytes) -> tuple[dict[str, Any], bytes | None]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            raise HTTPException(422, f"body is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise HTTPException(422, "body must be a JSON object")
        return obj, None
    form = await form_of(request, body)
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else None
    return fields, data


def fetch_media(settings: FaxSettings, url: str) -> bytes:
    if settings.media_url_prefixes and not any(url.startswith(p) for p in settings.media_url_prefixes):
        raise MediaRefused("media_url is not under any of media_url_prefixes")
    auth = (settings.media_username, settings.media_password) if settings.media_username else None
    policy = FetchPolicy(hosts=tuple(settings.media_hosts), credential_hosts=tuple(settings.media_hosts), auth=auth,
                         allow_private=settings.media_allow_private, max_bytes=settings.max_bytes,
                         timeout_s=settings.media_timeout_s)
    return fetch(url, policy).data


class FaxSpoolWatcher(FolderWatcher):
    kind = "fax"

    def __init__(self, settings: FaxSettings, **kwargs: Any) -> None:
        cfg = WatchedFolder(name="fax-spool", path=settings.spool_dir, channel="fax", team=settings.team,
                            extensions=[".tif", ".tiff", ".pdf"], poll_s=settings.poll_s)
        super().__init__(Path(settings.spool_dir), config=cfg, **kwargs)

    def take(self, path: Path, rel: Path, data: bytes) -> Taken:
        meta = {**self.metadata_for(rel), **describe_fax(data)}
        meta.setdefault("subject", f"Fax from {meta.get('sender_phone', 'unknown sender')}")
        return Taken([self.emitter.emit(data, channel="fax", filename=path.name, source=f"fax-spool:{rel}",
                                        metadata=meta, defer=True)])
