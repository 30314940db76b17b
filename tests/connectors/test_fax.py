"""Fax webhook (HMAC-signed; upload or media URL) and the HylaFAX-style spool folder, on real fax TIFFs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from connectors.fax import FaxSpoolWatcher, fax_router, sign
from connectors.metrics import Registry
from connectors.settings import FaxSettings
from connectors.state import StateStore
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import raw_items
from tests.connectors.standin import stand_in

SCANS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "scans"
G3 = SCANS / "libtiffnet__fax2d_1990_real_fax_g3.tif"
G4 = SCANS / "libtiffnet__CCITT_1_slerexe_business_letter_g4.tif"
SECRET = "fax-shared-secret"

pytestmark = pytest.mark.skipif(not G3.exists(), reason="needs ../shared/corpus")


def client_for(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry, **kw: object) -> TestClient:
    cfg = FaxSettings.model_validate({"enabled": True, "secret": SECRET, **kw})
    app = FastAPI()
    app.include_router(fax_router(cfg, bus=bus, blobs=blobs, state=StateStore(tmp_path / "fax.db"), registry=registry))
    return TestClient(app)


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "caseworkfaxboundary"
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
              f"Content-Type: image/tiff\r\n\r\n".encode() + data + f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_uploaded_g3_fax_is_published_once(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                           registry: Registry) -> None:
    client = client_for(tmp_path, bus, blobs, registry, team="mailroom")
    body, ctype = multipart({"fax_id": "FX-1001", "from": "+441234000111", "to": "+441234000999"}, "in.tif",
                            G3.read_bytes())
    headers = {"Content-Type": ctype, "X-Casework-Signature": sign(SECRET, body)}
    first = client.post("/webhooks/fax", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    second = client.post("/webhooks/fax", content=body, headers=headers)
    assert second.json() == {"item_id": first.json()["item_id"], "duplicate": True}
    [item] = raw_items(bus)
    assert item.channel == "fax" and item.idempotency_key == "fax:FX-1001"
    assert item.metadata["sender_phone"] == "+441234000111" and item.metadata["fax_compression"] == "G3"
    assert item.metadata["team"] == "mailroom"


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "wrong-key"])
def test_unsigned_or_wrongly_signed_fax_webhooks_get_403(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                         registry: Registry, signature: str | None) -> None:
    client = client_for(tmp_path, bus, blobs, registry)
    body, ctype = multipart({"fax_id": "FX-1002"}, "in.tif", G4.read_bytes())
    headers = {"Content-Type": ctype}
    if signature == "wrong-key":
        headers["X-Casework-Signature"] = sign("another-secret", body)
    elif signature:
        headers["X-Casework-Signature"] = signature
    assert client.post("/webhooks/fax", content=body, headers=headers).status_code == 403
    assert raw_items(bus) == []


def test_media_url_is_fetched_and_non_fax_bytes_are_refused(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                            registry: Registry) -> None:
    with stand_in({("GET", "/fax/2.tif"): (200, "image/tiff", G4.read_bytes()),
                   ("GET", "/fax/3.txt"): (200, "text/plain", b"hello")}) as provider:
        client = client_for(tmp_path, bus, blobs, registry, media_url_prefixes=[provider.url + "/fax/"],
                            media_allow_private=True)  # the loopback stand-in for the provider, allowed explicitly
        for fax_id, path, status in (("FX-2", "/fax/2.tif", 200), ("FX-3", "/fax/3.txt", 422)):
            body = json.dumps({"fax_id": fax_id, "from": "+15551234567", "media_url": provider.url + path}).encode()
            r = client.post("/webhooks/fax", content=body, headers={
                "Content-Type": "application/json", "X-Casework-Signature": sign(SECRET, body)})
            assert r.status_code == status, r.text
        outside = json.dumps({"fax_id": "FX-4", "media_url": "http://169.254.169.254/latest"}).encode()
        r = client.post("/webhooks/fax", content=outside, headers={
            "Content-Type": "application/json", "X-Casework-Signature": sign(SECRET, outside)})
        assert r.status_code == 422 and "media_url_prefixes" in r.json()["detail"]
    [item] = raw_items(bus)
    assert item.idempotency_key == "fax:FX-2" and item.metadata["fax_compression"] == "G4"


def test_media_url_on_an_internal_https_address_is_refused_without_connecting(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    """Issue 16, point 1: the fax webhook refused plain http but still connected to internal https hosts."""
    with stand_in({("GET", "/fax/2.tif"): (200, "image/tiff", G4.read_bytes())}) as internal:
        client = client_for(tmp_path, bus, blobs, registry, media_username="provider", media_password="pw")
        port = internal.url.rsplit(":", 1)[1]
        for fax_id, url in (("FX-5", f"https://127.0.0.1:{port}/fax/2.tif"),
                            ("FX-6", f"https://localhost:{port}/fax/2.tif")):
            body = json.dumps({"fax_id": fax_id, "media_url": url}).encode()
            r = client.post("/webhooks/fax", content=body, headers={
                "Content-Type": "application/json", "X-Casework-Signature": sign(SECRET, body)})
            assert r.status_code == 422 and "loopback" in r.json()["detail"], r.text
        assert internal.connections == 0
    assert raw_items(bus) == []


def test_an_unsigned_fax_is_refused_before_its_body_is_read_and_a_big_one_at_the_limit(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    client = client_for(tmp_path, bus, blobs, registry, max_bytes=100_000)
    taken: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(100):  # 100 x 1 MB, chunked: no Content-Length to refuse it by
            taken.append(1)
            yield b"x" * 1_000_000

    r = client.post("/webhooks/fax", content=body(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 403 and r.headers["connection"] == "close"
    assert taken == [], "the body was read before the missing signature was noticed"
    big = b"x" * 1_200_000  # over max_bytes plus the form's allowance (TestClient sends it whole; tests/api
    r = client.post("/webhooks/fax", content=big, headers={  # test_body_limits stops a real server reading)
        "Content-Type": "application/octet-stream", "X-Casework-Signature": sign(SECRET, big)})
    assert r.status_code == 413 and r.headers["connection"] == "close"


def test_spool_folder_takes_tiffs_with_the_sender_tsi(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                      registry: Registry) -> None:
    spool = tmp_path / "recvq"
    w = FaxSpoolWatcher(FaxSettings(spool_dir=str(spool)), bus=bus, blobs=blobs, registry=registry,
                        stable_s=0.0)
    with Image.open(G4) as img:
        buf = io.BytesIO()
        img.save(buf, format="TIFF", compression="group4", description="+44 20 7946 0000")
    (spool / "fax000000001.tif").write_bytes(buf.getvalue())
    (spool / "fax000000002.tif").write_bytes(b"not a tiff at all")
    (spool / "seqf").write_text("3")  # HylaFAX's sequence file is not a fax
    w.scan_once()
    w.scan_once()
    [item] = raw_items(bus)
    assert item.channel == "fax" and item.metadata["sender_phone"] == "+44 20 7946 0000"
    assert item.idempotency_key.startswith("fax:sha256:")
    assert w.failed == 1 and (spool / "seqf").exists()
