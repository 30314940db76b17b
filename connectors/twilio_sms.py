"""Twilio SMS and MMS: the inbound webhook, and outbound SMS through the Twilio REST API.

Inbound (``POST {path}``, form-encoded, as Twilio sends it): the ``X-Twilio-Signature`` header
is checked with twilio's ``RequestValidator`` against ``public_url`` (the exact URL configured in
the Twilio console; the request's own URL when empty) and the form parameters. A missing or
wrong signature, or no ``auth_token`` configured, gets 403 and nothing is stored.

A plain SMS becomes a ``text/plain`` item; an MMS becomes one MIME document (the text plus each
``MediaUrl{i}``, fetched with the account SID and auth token as Twilio requires). Channel
``sms``, idempotency key ``sms:<MessageSid>``: Twilio retrying a webhook gives the same item, and
a MessageSid already published is answered without fetching or publishing again (state in
``DATA_DIR/connectors/twilio.db``). The answer is TwiML: empty, or ``<Message>reply</Message>``.
Media that cannot be fetched gives 502 (nothing stored; Twilio keeps the message and its media).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped,unused-ignore]
from twilio.twiml.messaging_response import MessagingResponse  # type: ignore[import-untyped,unused-ignore]

from connectors.emit import Emitter
from connectors.metrics import Registry
from connectors.mime import Attachment, pack
from connectors.settings import TwilioSettings
from connectors.state import StateStore
from ingest.blobs import BlobStore
from ingest.bus.port import Bus

log = logging.getLogger(__name__)

_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "application/pdf": ".pdf",
        "image/tiff": ".tif", "text/plain": ".txt", "text/vcard": ".vcf"}


def twiml(reply: str) -> Response:
    r = MessagingResponse()
    if reply:
        r.message(reply)
    return Response(str(r), media_type="application/xml")


def fetch_media(settings: TwilioSettings, url: str) -> tuple[bytes, str]:
    """GET a media URL with the account's credentials (redirects followed; auth not sent to other hosts)."""
    with httpx.Client(auth=(settings.account_sid, settings.auth_token), follow_redirects=True,
                      timeout=settings.media_timeout_s) as http, http.stream("GET", url) as r:
        r.raise_for_status()
        chunks: list[bytes] = []
        size = 0
        for chunk in r.iter_bytes():
            size += len(chunk)
            if size > settings.max_media_bytes:
                raise ValueError(f"media over {settings.max_media_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks), r.headers.get("content-type", "application/octet-stream").split(";")[0]


def build_item(settings: TwilioSettings, params: dict[str, str]) -> tuple[bytes, str, str]:
    """(bytes, filename, content type) of one inbound SMS/MMS."""
    sid = params["MessageSid"]
    body = params.get("Body", "")
    count = int(params.get("NumMedia", "0") or 0)
    if count == 0:
        return body.encode("utf-8"), f"sms-{sid}.txt", "text/plain; charset=utf-8"
    media = []
    for i in range(count):
        url = params.get(f"MediaUrl{i}", "")
        data, ctype = fetch_media(settings, url)
        ctype = params.get(f"MediaContentType{i}") or ctype
        media.append(Attachment(f"media-{i}{_EXT.get(ctype, '.bin')}", ctype, data))
    sender = params.get("From", "")
    data = pack(subject=f"MMS from {sender}", message_id=f"{sid}@sms.twilio", body=body, attachments=media)
    return data, f"mms-{sid}.eml", "message/rfc822"


def twilio_router(settings: TwilioSettings, *, bus: Bus, blobs: BlobStore, state: StateStore,
                  registry: Registry | None = None) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    emitter = Emitter("twilio", bus=bus, blobs=blobs, state=state, registry=registry, kind="twilio")
    emitter.stats.set_state("running")
    validator = RequestValidator(settings.auth_token)

    @router.post(settings.path, summary="Twilio inbound SMS/MMS webhook (X-Twilio-Signature checked)")
    async def twilio_inbound(request: Request) -> Response:
        form = await request.form()
        params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        url = settings.public_url or str(request.url)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not settings.auth_token or not signature or not validator.validate(url, params, signature):
            emitter.stats.record_failed("webhook signature missing or wrong")
            log.warning("twilio: refused a webhook with a %s signature from %s",
                        "wrong" if signature else "missing", request.client.host if request.client else "?")
            raise HTTPException(403, "X-Twilio-Signature missing or not valid for this URL")
        sid = params.get("MessageSid") or params.get("SmsSid")
        if not sid:
            emitter.failed("webhook", "no MessageSid in the request")
            raise HTTPException(422, "no MessageSid: not an inbound message webhook")
        params["MessageSid"] = sid
        if state.seen(f"sms:{sid}"):
            emitter.stats.record_duplicate()
            log.info("twilio: %s already published; answering without publishing again", sid)
            return twiml(settings.reply)
        try:
            data, filename, ctype = await run_in_threadpool(build_item, settings, params)
        except (httpx.HTTPError, ValueError) as exc:
            emitter.failed(f"media of {sid}", exc)
            raise HTTPException(502, f"could not fetch the MMS media: {exc}") from None
        meta = {"sender_phone": params.get("From", ""), "to_phone": params.get("To", ""),
                "subject": f"SMS from {params.get('From', '')}", "num_media": params.get("NumMedia", "0"),
                "twilio_account": params.get("AccountSid", "")}
        await run_in_threadpool(lambda: emitter.emit(data, channel="sms", filename=filename, source=f"twilio:{sid}",
                                                     source_id=sid, content_type=ctype, metadata=meta))
        return twiml(settings.reply)

    return router


def twilio_client(settings: TwilioSettings) -> Any:
    client = Client(settings.account_sid, settings.auth_token)
    if settings.api_base_url:
        client.api.base_url = settings.api_base_url.rstrip("/")
    return client


def send_sms(settings: TwilioSettings, *, to: str, body: str, media_url: list[str] | None = None,
             client: Any = None) -> str:
    """Send an SMS (or MMS with ``media_url``) from ``from_number``; returns Twilio's MessageSid."""
    if not settings.account_sid or not settings.auth_token or not settings.from_number:
        raise ValueError("outbound SMS needs connectors.twilio.account_sid, auth_token and from_number")
    client = client or twilio_client(settings)
    kwargs: dict[str, Any] = {"to": to, "from_": settings.from_number, "body": body}
    if media_url:
        kwargs["media_url"] = media_url
    message = client.messages.create(**kwargs)
    log.info("twilio: sent SMS %s to %s", message.sid, to)
    return str(message.sid)
