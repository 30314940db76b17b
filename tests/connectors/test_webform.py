"""Web forms: filled in and sent by real headless Chromium; CSRF, honeypot, rate and size limits."""

from __future__ import annotations

import email
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from connectors.metrics import Registry
from connectors.settings import WebformSettings
from connectors.state import StateStore
from connectors.webform import webform_router
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import free_port, raw_items

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

FORMS = {"secret": "test-secret", "rate_limit": 5, "max_body_bytes": 200_000, "max_file_bytes": 50_000,
         "forms": [{"id": "complaint", "title": "Make a complaint", "case_type": "complaint", "team": "complaints",
                    "fields": [
                        {"name": "name", "label": "Your name", "required": True},
                        {"name": "email", "label": "Email", "type": "email", "required": True,
                         "metadata_key": "sender_email"},
                        {"name": "topic", "type": "select", "options": ["billing", "service"]},
                        {"name": "details", "type": "textarea", "required": True},
                        {"name": "evidence", "type": "file"}]}]}


def make_app(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry, **kw: object) -> FastAPI:
    app = FastAPI()
    cfg = WebformSettings.model_validate({**FORMS, "enabled": True, **kw})
    app.include_router(webform_router(cfg, bus=bus, blobs=blobs, state=StateStore(tmp_path / "webform.db"),
                                      registry=registry))
    return app


def token_of(client: TestClient) -> str:
    page = client.get("/forms/complaint")
    assert page.status_code == 200
    m = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


GOOD = {"name": "Jane Doe", "email": "jane@example.com", "topic": "billing", "details": "Charged twice in May."}


@pytest.fixture
def server(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> Iterator[str]:
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(make_app(tmp_path, bus, blobs, registry), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="off"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_chromium_fills_in_and_sends_the_form_with_a_file(server: str, tmp_path: Path, bus: SqliteBus,
                                                          blobs: FileBlobStore) -> None:
    from playwright.sync_api import sync_playwright

    evidence = tmp_path / "receipt.txt"
    evidence.write_text("Receipt 42: charged twice")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{server}/forms/complaint")
            assert page.title() == "Make a complaint"
            box = page.locator("#website").bounding_box()
            assert box is not None and box["x"] + box["width"] < 0, "the honeypot is off-screen for people"
            page.fill("#name", "Jane Doe")
            page.fill("#email", "jane@example.com")
            page.select_option("#topic", "service")
            page.fill("#details", "The engineer did not come about CM-2025-000001.")
            page.set_input_files("#evidence", str(evidence))
            page.click("button[type=submit]")
            page.wait_for_selector("#thanks")
            reference = page.inner_text("#reference")
        finally:
            browser.close()
    [item] = raw_items(bus)
    assert reference == item.item_id[:8].upper()
    assert item.channel == "webform" and item.idempotency_key.startswith("webform:complaint:")
    assert item.metadata["sender_email"] == "jane@example.com" and item.metadata["form.topic"] == "service"
    assert item.metadata["doc_type"] == "complaint" and item.metadata["team"] == "complaints"
    mime = email.message_from_bytes(blobs.read(item.blob_sha256))
    parts = {p.get_filename() or p.get_content_type(): bytes(p.get_payload(decode=True))
             for p in mime.walk() if not p.is_multipart()}
    assert parts["receipt.txt"] == b"Receipt 42: charged twice"
    fields = json.loads(parts["fields.json"])
    assert fields["fields"]["details"].startswith("The engineer") and fields["files"][0]["filename"] == "receipt.txt"


def test_fields_only_submission_is_json_and_a_resend_is_one_item(tmp_path: Path, bus: SqliteBus,
                                                                 blobs: FileBlobStore, registry: Registry) -> None:
    client = TestClient(make_app(tmp_path, bus, blobs, registry))
    form = {**GOOD, "_csrf": token_of(client)}
    first = client.post("/forms/complaint", data=form)
    second = client.post("/forms/complaint", data=form)
    assert first.status_code == second.status_code == 200 and "Thank you" in first.text
    [item] = raw_items(bus)
    assert item.content_type == "application/json"
    assert json.loads(blobs.read(item.blob_sha256))["fields"] == {**GOOD}
    assert registry.health()["webform"]["duplicates"] == 1


def test_missing_or_forged_csrf_token_is_refused(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                 registry: Registry) -> None:
    client = TestClient(make_app(tmp_path, bus, blobs, registry))
    assert client.post("/forms/complaint", data=GOOD).status_code == 403
    ts, nonce, _ = token_of(client).split(".")
    assert client.post("/forms/complaint", data={**GOOD, "_csrf": f"{ts}.{nonce}.{'0' * 32}"}).status_code == 403
    old = TestClient(make_app(tmp_path, bus, blobs, registry, token_ttl_s=0))
    token = token_of(old)
    time.sleep(1.1)
    assert old.post("/forms/complaint", data={**GOOD, "_csrf": token}).status_code == 403
    assert raw_items(bus) == []


def test_honeypot_required_fields_size_and_rate_limits(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                       registry: Registry) -> None:
    client = TestClient(make_app(tmp_path, bus, blobs, registry, rate_limit=4))
    bot = client.post("/forms/complaint", data={**GOOD, "website": "http://spam", "_csrf": token_of(client)})
    assert bot.status_code == 200 and raw_items(bus) == []
    missing = client.post("/forms/complaint", data={"name": "J", "email": "not-an-email", "_csrf": token_of(client)})
    assert missing.status_code == 422 and "Email is not an email address" in missing.text
    assert "details is required" in missing.text and 'value="J"' in missing.text
    big = client.post("/forms/complaint", data={**GOOD, "_csrf": token_of(client)},
                      files={"evidence": ("big.bin", b"x" * 60_000, "application/octet-stream")})
    assert big.status_code == 422 and "Evidence is over" not in big.text and "evidence is over" in big.text
    huge = client.post("/forms/complaint", data={**GOOD, "_csrf": token_of(client)},
                       files={"evidence": ("huge.bin", b"x" * 300_000, "application/octet-stream")})
    assert huge.status_code == 413
    limited = client.post("/forms/complaint", data={**GOOD, "_csrf": token_of(client)})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert raw_items(bus) == []
    assert client.get("/forms/nope").status_code == 404
