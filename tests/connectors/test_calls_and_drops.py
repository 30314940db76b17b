"""Call record exports and integration landing folders, through the folder watcher."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from connectors.calls import CallRecordsWatcher
from connectors.drops import DropWatcher
from connectors.metrics import Registry
from connectors.settings import CallSettings, DropIntegration
from connectors.state import StateStore
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import raw_items

CALLS_CSV = """CallID;From;To;Start Time;Duration;Agent;Notes;RecordingUrl
c-1;+447700900123;+441234000000;2026-11-20T09:15:00Z;00:04:10;alice;Asked about CM-2025-000001;https://rec.example/c-1.mp3
c-2;+447700900456;+441234000000;2026-11-20T09:30:00Z;95;bob;Wants a refund;
;;;2026-11-20T09:40:00Z;10;bob;nobody;
c-4;+447700900789;+441234000000;2026-11-20T09:45:00Z;forever;bob;bad duration;
"""


def scan_twice(w: CallRecordsWatcher | DropWatcher) -> None:
    w.scan_once()
    w.scan_once()


def test_call_records_become_one_item_per_call_and_bad_rows_are_reported(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    root = tmp_path / "calls"
    w = CallRecordsWatcher(CallSettings(path=str(root), team="phones"), bus=bus, blobs=blobs, registry=registry,
                           state=StateStore(tmp_path / "calls.db"), stable_s=0.0)
    (root / "export.csv").write_text(CALLS_CSV)
    (root / "more.jsonl").write_text(json.dumps({"uniqueid": "c-1", "src": "+447700900123", "billsec": 250}) + "\n"
                                     + json.dumps({"caller_number": "+15550001111", "duration": "1:02",
                                                   "comments": "callback please"}) + "\n")
    scan_twice(w)
    items = raw_items(bus)
    by_key = {i.idempotency_key: i for i in items}
    assert len(items) == 3 and {"call:c-1", "call:c-2"} <= set(by_key), by_key.keys()
    first = by_key["call:c-1"]
    assert first.channel == "call" and first.metadata["sender_phone"] == "+447700900123"
    assert first.metadata["duration_s"] == "250" and first.metadata["agent"] == "alice"
    assert first.metadata["trusted_by"].startswith("calls:"), "a configured export: its metadata is trusted"
    assert first.metadata["recording_url"] == "https://rec.example/c-1.mp3" and first.metadata["team"] == "phones"
    body = json.loads(blobs.read(first.blob_sha256))
    assert body["notes"] == "Asked about CM-2025-000001" and body["record"]["CallID"] == "c-1"
    no_id = next(i for i in items if i.metadata.get("sender_phone") == "+15550001111")
    assert no_id.metadata["duration_s"] == "62" and len(no_id.idempotency_key) == len("call:") + 64
    errors = next((root / ".done").glob("*export.csv.errors.txt")).read_text()
    assert "row 4: no caller number and no call id" in errors and "row 5: duration 'forever'" in errors
    assert w.failed == 2 and w.received == 3 and registry.health()["calls"]["duplicates"] == 1


def pdf_with_info(title: str) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (200, 200), 255).save(buf, format="PDF", title=title)
    return buf.getvalue()


def test_integration_drop_maps_fields_to_customer_and_case(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                           registry: Registry) -> None:
    root = tmp_path / "billing"
    integ = DropIntegration(
        name="billing", path=str(root), team="billing", doc_type="invoice",
        filename_pattern=r"^(?P<customer_id>C-\d+)_",
        fields={"case_ref": "CaseRef", "sender_email": "customer.email", "source_id": "DocumentId"})
    w = DropWatcher(integ, bus=bus, blobs=blobs, registry=registry, stable_s=0.0)
    (root / "C-1001_invoice.xml").write_text(
        '<?xml version="1.0"?><Invoice xmlns="urn:x"><DocumentId>INV-9</DocumentId>'
        "<Header><CaseRef>CM-2025-000001</CaseRef></Header></Invoice>")
    (root / "C-1002_notice.json").write_text(json.dumps({"customer": {"email": "sam@example.com"},
                                                         "CaseRef": "CM-2025-000002"}))
    (root / "C-1003_list.csv").write_text("CaseRef,amount\nCM-2025-000003,12.50\n")
    (root / "C-1004_page.html").write_text('<html><head><meta name="CaseRef" content="CM-2025-000004"></head>'
                                           "<body>hello</body></html>")
    (root / "C-1005_broken.json").write_text("{not json")
    (root / "ignored.exe").write_bytes(b"MZ")
    scan_twice(w)
    items = {i.filename: i for i in raw_items(bus)}
    assert set(items) == {"C-1001_invoice.xml", "C-1002_notice.json", "C-1003_list.csv", "C-1004_page.html",
                          "C-1005_broken.json"}
    xml = items["C-1001_invoice.xml"]
    assert xml.idempotency_key == "file:billing:INV-9" and xml.channel == "file"
    assert xml.metadata | {} == {"team": "billing", "doc_type": "invoice", "integration": "billing",
                                 "customer_id": "C-1001", "case_ref": "CM-2025-000001", "trusted_by": "drop:billing"}
    assert items["C-1002_notice.json"].metadata["sender_email"] == "sam@example.com"
    assert items["C-1003_list.csv"].metadata["case_ref"] == "CM-2025-000003"
    assert items["C-1004_page.html"].metadata["case_ref"] == "CM-2025-000004"
    assert "mapping_error" in items["C-1005_broken.json"].metadata
    assert (root / "ignored.exe").exists()


def test_integration_drop_reads_pdf_document_information(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                         registry: Registry) -> None:
    root = tmp_path / "courts"
    w = DropWatcher(DropIntegration(name="courts", path=str(root), fields={"case_ref": "Title"}), bus=bus,
                    blobs=blobs, registry=registry, stable_s=0.0)
    (root / "order.pdf").write_bytes(pdf_with_info("CM-2025-000007"))
    scan_twice(w)
    [item] = raw_items(bus)
    assert item.metadata["case_ref"] == "CM-2025-000007"
