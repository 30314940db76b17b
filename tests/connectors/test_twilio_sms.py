"""Twilio webhooks signed with twilio's RequestValidator; MMS media and the REST API on local stand-ins."""

from __future__ import annotations

import base64
import email
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from connectors.metrics import Registry
from connectors.settings import TwilioSettings
from connectors.state import StateStore
from connectors.twilio_sms import send_sms, twilio_router
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import raw_items
from tests.connectors.standin import stand_in

SID, TOKEN = "AC" + "1" * 32, "secret-auth-token"
URL = "http://testserver/webhooks/twilio/sms"
LOOPBACK_PROVIDER = {"media_hosts": ["127.0.0.1"], "media_allow_private": True}  # a stand-in for api.twilio.com
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def sms(message_sid: str, body: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": message_sid, "SmsSid": message_sid, "AccountSid": SID, "From": "+447700900123",
            "To": "+441234567890", "Body": body, "NumMedia": "0", **extra}


def signed(params: dict[str, str], url: str = URL, token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


def make_client(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry,
                **settings: object) -> TestClient:
    cfg = TwilioSettings.model_validate({"enabled": True, "account_sid": SID, "auth_token": TOKEN, **settings})
    app = FastAPI()
    app.include_router(twilio_router(cfg, bus=bus, blobs=blobs, state=StateStore(tmp_path / "twilio.db"),
                                     registry=registry))
    return TestClient(app)


def test_signed_sms_is_published_once_with_twiml_reply(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                       registry: Registry) -> None:
    client = make_client(tmp_path, bus, blobs, registry, reply="Thanks, we got your message.")
    params = sms("SM" + "a" * 32, "About CM-2025-000001: any news?")
    r = client.post("/webhooks/twilio/sms", data=params, headers=signed(params))
    assert r.status_code == 200 and "<Message>Thanks, we got your message.</Message>" in r.text
    again = client.post("/webhooks/twilio/sms", data=params, headers=signed(params))  # Twilio retries
    assert again.status_code == 200
    [item] = raw_items(bus)
    assert item.channel == "sms" and item.idempotency_key == f"sms:SM{'a' * 32}"
    assert item.metadata["sender_phone"] == "+447700900123"
    assert blobs.read(item.blob_sha256) == b"About CM-2025-000001: any news?"
    assert registry.health()["twilio"]["duplicates"] == 1


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm9wZQ=="}, "other-token", "other-url"])
def test_unsigned_or_wrongly_signed_requests_get_403_and_nothing_is_stored(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry, headers: object) -> None:
    client = make_client(tmp_path, bus, blobs, registry)
    params = sms("SM" + "b" * 32, "hello")
    if headers == "other-token":
        headers = signed(params, token="not-the-token")
    elif headers == "other-url":
        headers = signed(params, url="http://testserver/elsewhere")
    assert isinstance(headers, dict)
    r = client.post("/webhooks/twilio/sms", data=params, headers=headers)
    assert r.status_code == 403
    assert raw_items(bus) == [] and not list((tmp_path / "blobs").rglob("*/*/*"))


def test_mms_media_is_fetched_with_the_account_credentials(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                           registry: Registry) -> None:
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    with stand_in({("GET", "/media/ME1"): (200, "image/png", PNG)}, basic_auth=auth) as media:
        client = make_client(tmp_path, bus, blobs, registry, public_url="https://casework.example/twilio",
                             **LOOPBACK_PROVIDER)
        params = sms("MM" + "c" * 32, "photo of the damage", NumMedia="1", MediaUrl0=f"{media.url}/media/ME1",
                     MediaContentType0="image/png")
        r = client.post("/webhooks/twilio/sms", data=params,
                        headers=signed(params, url="https://casework.example/twilio"))
        assert r.status_code == 200, r.text
        assert [s.headers["Authorization"] for s in media.requests] == [auth]
    [item] = raw_items(bus)
    assert item.idempotency_key == f"sms:MM{'c' * 32}" and item.content_type == "message/rfc822"
    mime = email.message_from_bytes(blobs.read(item.blob_sha256))
    parts = {p.get_content_type(): bytes(p.get_payload(decode=True)) for p in mime.walk() if not p.is_multipart()}
    assert parts["image/png"] == PNG and parts["text/plain"].strip() == b"photo of the damage"


def test_mms_media_that_cannot_be_fetched_gives_502(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                    registry: Registry) -> None:
    with stand_in({}) as media:
        client = make_client(tmp_path, bus, blobs, registry, **LOOPBACK_PROVIDER)
        params = sms("MM" + "d" * 32, "x", NumMedia="1", MediaUrl0=f"{media.url}/gone")
        assert client.post("/webhooks/twilio/sms", data=params, headers=signed(params)).status_code == 502
    assert raw_items(bus) == []


def test_mms_media_on_an_internal_address_is_never_fetched_and_the_text_is_filed(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    """Issue 16, point 1: a signed webhook naming 127.0.0.1 got the account credentials sent there and
    the internal page filed as a document. With the default settings nothing connects to it."""
    with stand_in({("GET", "/admin"): (200, "text/plain", b"admin panel config")}) as internal:
        client = make_client(tmp_path, bus, blobs, registry)
        params = sms("MM" + "f" * 32, "photo of the damage", NumMedia="2", MediaUrl0=f"{internal.url}/admin",
                     MediaContentType0="text/plain",
                     MediaUrl1=internal.url.replace("http://127.0.0.1", "https://localhost") + "/admin")
        r = client.post("/webhooks/twilio/sms", data=params, headers=signed(params))
        assert r.status_code == 200, r.text
        assert internal.connections == 0 and internal.requests == [], "the internal address was contacted"
    [item] = raw_items(bus)
    data = blobs.read(item.blob_sha256)
    assert b"admin panel config" not in data
    mime = email.message_from_bytes(data)
    parts = [p for p in mime.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/plain"], "no media part: only the text"
    text = bytes(parts[0].get_payload(decode=True)).decode()
    assert text.startswith("photo of the damage")
    assert "[media 0 not fetched: the media URL http://127.0.0.1 is not https]" in text
    assert "[media 1 not fetched: the media URL host localhost is not on the allow-list (api.twilio.com)]" in text
    assert "not https" in item.metadata["media_refused"] and "allow-list" in item.metadata["media_refused"]
    assert registry.health()["twilio"]["received"] == 1


def test_an_unsigned_webhook_is_refused_before_its_body_is_read(tmp_path: Path, bus: SqliteBus,
                                                                blobs: FileBlobStore, registry: Registry) -> None:
    client = make_client(tmp_path, bus, blobs, registry)
    taken: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(100):
            taken.append(1)
            yield b"Body=" + b"x" * 10_000 + b"&"

    r = client.post("/webhooks/twilio/sms", content=body(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403 and r.headers["connection"] == "close"
    assert taken == [], "the body was read before the missing signature was noticed"
    big = sms("SM" + "9" * 32, "x" * 300_000)
    r = client.post("/webhooks/twilio/sms", data=big, headers=signed(big))
    assert r.status_code == 413 and raw_items(bus) == []


def test_outbound_sms_goes_through_the_twilio_client_to_the_rest_api() -> None:
    reply = json.dumps({"sid": "SM" + "e" * 32, "status": "queued", "to": "+447700900123", "body": "Hello"}).encode()
    path = f"/2010-04-01/Accounts/{SID}/Messages.json"
    with stand_in({("POST", path): (201, "application/json", reply)}) as api:
        cfg = TwilioSettings(account_sid=SID, auth_token=TOKEN, from_number="+441234567890", api_base_url=api.url)
        sid = send_sms(cfg, to="+447700900123", body="Your case CM-2025-000001 was updated.")
        assert sid == "SM" + "e" * 32
        [req] = api.requests
    assert req.method == "POST" and req.path == path
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    form = parse_qs(req.body.decode())
    assert form == {"To": ["+447700900123"], "From": ["+441234567890"],
                    "Body": ["Your case CM-2025-000001 was updated."]}
