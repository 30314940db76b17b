"""Connectors started as `casework serve` starts them, into the real pipeline and case store."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, items
from connectors.metrics import Registry
from connectors.runner import routers, start_connectors
from connectors.settings import ConnectorSettings
from ingest.pipeline import PipelineRunner
from tests.connectors.conftest import free_port, wait_until

TOKEN = "tw-token"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=tmp_path / "data"))
    with runtime.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com",
                                  phone="+447700900123")
        cases.upsert_case(s, ref="CM-2025-000001", customer_id="C1", case_type="complaint", status="open",
                          opened_at=None, subject="noise at night", team="complaints")
    runner = PipelineRunner(runtime.pipeline_parts())
    runner.start()
    yield runtime
    runner.close()
    runtime.close()


def outcome(rt: Runtime, item_id: str) -> dict[str, Any]:
    with rt.sessions() as s:
        return items.outcomes(s, item_ids=[item_id]).get(item_id, {})


def test_smtp_folder_and_sms_items_are_filed_once(rt: Runtime, tmp_path: Path) -> None:
    registry = Registry()
    port = free_port()
    settings = ConnectorSettings.model_validate({
        "smtp": {"enabled": True, "port": port, "domains": ["cases.example"]},
        "folders": {"enabled": True, "folders": [{"name": "scans", "path": str(tmp_path / "scans"),
                                                  "channel": "file", "stable_s": 0.1, "poll_s": 0.2}]},
        "twilio": {"enabled": True, "account_sid": "AC" + "0" * 32, "auth_token": TOKEN},
    })
    stop = threading.Event()
    threads = start_connectors(settings, bus=rt.bus, blobs=rt.blobs, data_dir=rt.settings.data_dir, stop=stop,
                               registry=registry)
    app = FastAPI()
    for r in routers(settings, bus=rt.bus, blobs=rt.blobs, data_dir=rt.settings.data_dir, registry=registry):
        app.include_router(r)
    try:
        wait_until(lambda: registry.get("smtp").state == "running", what="the SMTP listener")
        mail = (b"From: Jane Doe <jane@example.com>\r\nTo: cases@cases.example\r\nSubject: CM-2025-000001\r\n"
                b"Message-ID: <e2e-1@example.com>\r\n\r\nThe noise goes on every night.\r\n")
        for _ in range(2):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.sendmail("jane@example.com", ["cases@cases.example"], mail)
        (tmp_path / "scans" / "letter.txt").write_text("Dear sirs, about CM-2025-000001 from jane@example.com")
        params = {"MessageSid": "SM" + "9" * 32, "From": "+447700900123", "To": "+440000", "Body":
                  "Still noisy, CM-2025-000001", "NumMedia": "0"}
        url = "http://testserver/webhooks/twilio/sms"
        sig = RequestValidator(TOKEN).compute_signature(url, params)
        client = TestClient(app)
        for _ in range(2):
            assert client.post("/webhooks/twilio/sms", data=params, headers={"X-Twilio-Signature": sig}).status_code \
                == 200
        wait_until(lambda: registry.get("scans").received == 1, what="the scan folder")
        health = registry.health()
        assert health["smtp"]["received"] == 1 and health["smtp"]["duplicates"] == 1
        assert health["twilio"]["received"] == 1 and health["twilio"]["duplicates"] == 1
        with rt.sessions() as s:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                folder = cases.case_folder(s, ref="CM-2025-000001")
                if len({d["item_id"] for d in folder["documents"]}) >= 3:
                    break
                s.rollback()
                time.sleep(0.2)
        by_item = {d["item_id"]: d["channel"] for d in folder["documents"]}
        assert sorted(by_item.values()) == ["email", "file", "sms"], folder["documents"]
        assert all(outcome(rt, i)["outcome"] == "attached" for i in by_item)
        received = {s.labels["connector"]: s.value for f in text_string_to_metric_families(registry.prometheus())
                    for s in f.samples if s.name == "casework_connector_received_total"}
        assert received["smtp"] == 1
    finally:
        stop.set()
        for t in threads:
            t.join(10)
