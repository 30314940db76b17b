"""Twilio SMS and MMS: the inbound webhook, and outbound SMS through the Twilio REST API.

Inbound (``POST {path}``, form-encoded, as Twilio sends it): the ``X-Twilio-Signature`` header
is checked with twilio's ``RequestValidator`` against ``public_url`` (the exact URL configured in
the Twilio console; the request's own URL when empty) and the form parameters. A missing or
wrong signature, or no ``auth_token`` configured, gets 403 and nothing is stored.

The signature header and the body's size (``MAX_WEBHOOK_BYTES``) are checked before the body is
read: an unsigned request gets 403 without its body being taken.

A plain SMS becomes a ``text/plain`` item; an MMS becomes one MIME document (the text plus each
``MediaUrl{i}``, fetched through ``connectors.media_fetch``: only from ``media_hosts``, by default
``api.twilio.com``, and the redirects Twilio makes to ``media_redirect_hosts``, by default
``*.twiliocdn.com``; never from a private, loopback or link-local address; the account SID and auth
token go to ``media_hosts`` only). Channel ``sms``, idempotency key ``sms:<MessageSid>``: Twilio
retrying a webhook gives the same item, and a MessageSid already published is answered without
fetching or publishing again (state in ``DATA_DIR/connectors/twilio.db``). The answer is TwiML:
empty, or ``<Message>reply</Message>``.
Media refused by those rules (or over ``max_media_bytes``) is not fetched, and the text is filed all
the same, with a note per refused media file in the text and in the metadata ``media_refused``.
Media the provider could not deliver now gives 502 (nothing stored; Twilio keeps the message and
its media).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped,unused-ignore]
from twilio.twiml.messaging_response import MessagingResponse  # type: ignore[import-untyped,unused-ignore]

from connectors.emit import Emitter
from connectors.http_body import form_of, read_limited, refuse
from connectors.media_fetch import FetchPolicy, MediaRefused, MediaUnavailable, fetch
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


MAX_WEBHOOK_BYTES = 256 * 1024  # a webhook is a form of some 30 short fields; 1600 characters of text


def media_policy(settings: TwilioSettings) -> FetchPolicy:
    return FetchPolicy(hosts=tuple(settings.media_hosts), redirect_hosts=tuple(settings.media_redirect_hosts),
                       credential_hosts=tuple(settings.media_hosts),
                       auth=(settings.account_sid, settings.auth_token), allow_private=settings.media_allow_private,
                       max_bytes=settings.max_media_bytes, timeout_s=settings.media_timeout_s)


def build_item(settings: TwilioSettings, params: dict[str, str]) -> tuple[bytes, str, str, list[str]]:
    """(bytes, filename, content type, refused media notes) of one inbound SMS/MMS.

    Raises MediaUnavailable when a media file could not be fetched now (the webhook answers 502).
    """
    sid = params["MessageSid"]
    body = params.get("Body", "")
    num_media = params.get("NumMedia", "0")
    count = min(int(num_media), 10) if num_media.isdigit() else 0  # Twilio sends at most 10
    if count == 0:
        return body.encode("utf-8"), f"sms-{sid}.txt", "text/plain; charset=utf-8", []
    policy = media_policy(settings)
    media: list[Attachment] = []
    refused: list[str] = []
    for i in range(count):
        url = params.get(f"MediaUrl{i}", "")
        try:
            got = fetch(url, policy)
        except MediaRefused as exc:
            log.warning("twilio: media %d of %s refused, not fetched: %s", i, sid, exc)
            refused.append(f"media {i} not fetched: {exc}")
            continue
        ctype = params.get(f"MediaContentType{i}") or got.content_type
        media.append(Attachment(f"media-{i}{_EXT.get(ctype, '.bin')}", ctype, got.data))
    if refused:
        body = "\n\n".join(part for part in (body, "\n".join(f"[{note}]" for note in refused)) if part)
    sender = params.get("From", "")
    data = pack(subject=f"MMS from {sender}", message_id=f"{sid}@sms.twilio", body=body, attachments=media)
    return data, f"mms-{sid}.eml", "message/rfc822", refused


def twilio_router(settings: TwilioSettings, *, bus: Bus, blobs: BlobStore, state: StateStore,
                  registry: Registry | None = None) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    emitter = Emitter("twilio", bus=bus, blobs=blobs, state=state, registry=registry, kind="twilio")
    emitter.stats.set_state("running")
    validator = RequestValidator(settings.auth_token)

    def refused(request: Request, how: str) -> None:
        emitter.stats.record_failed("webhook signature missing or wrong")
        log.warning("twilio: refused a webhook with a %s signature from %s", how,
                    request.client.host if request.client else "?")

    @router.post(settings.path, summary="Twilio inbound SMS/MMS webhook (X-Twilio-Signature checked)")
    async def twilio_inbound(request: Request) -> Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not settings.auth_token or not signature:  # refused before a byte of the body is read
            refused(request, "missing")
            raise refuse(403, "X-Twilio-Signature missing (or no auth_token configured)")
        raw = await read_limited(request, MAX_WEBHOOK_BYTES)
        if raw is None:
            emitter.stats.record_failed(f"webhook over {MAX_WEBHOOK_BYTES} bytes")
            raise refuse(413, f"a Twilio webhook is under {MAX_WEBHOOK_BYTES} bytes; this one is not")
        form = await form_of(request, raw)
        params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        url = settings.public_url or str(request.url)
        if not validator.validate(url, params, signature):
            refused(request, "wrong")
            raise HTTPException(403, "X-Twilio-Signature not valid for this URL")
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
            data, filename, ctype, media_refused = await run_in_threadpool(build_item, settings, params)
        except MediaUnavailable as exc:
            emitter.failed(f"media of {sid}", exc)
            raise HTTPException(502, f"could not fetch the MMS media: {exc}") from None
        meta = {"sender_phone": params.get("From", ""), "to_phone": params.get("To", ""),
                "subject": f"SMS from {params.get('From', '')}", "num_media": params.get("NumMedia", "0"),
                "twilio_account": params.get("AccountSid", "")}
        if media_refused:
            emitter.stats.record_failed(f"{sid}: {media_refused[0]}")
            meta["media_refused"] = "; ".join(media_refused)[:1000]
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
