"""`casework connector NAME` through run_connector: a watched folder, and a webhook with its own server."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped,unused-ignore]

from connectors.metrics import Registry
from connectors.runner import run_connector
from connectors.settings import ConnectorSettings
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import free_port, raw_items, wait_until


def test_unknown_or_unconfigured_connector_is_a_clear_error(tmp_path: Path, bus: SqliteBus,
                                                            blobs: FileBlobStore) -> None:
    with pytest.raises(ValueError, match="choose one of imap, smtp"):
        run_connector("pigeon", ConnectorSettings(), bus=bus, blobs=blobs, data_dir=tmp_path, stop=threading.Event())
    with pytest.raises(ValueError, match="nothing configured"):
        run_connector("calls", ConnectorSettings(), bus=bus, blobs=blobs, data_dir=tmp_path, stop=threading.Event())


def test_run_connector_runs_folders_until_stopped(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                  registry: Registry) -> None:
    settings = ConnectorSettings.model_validate({"folders": {"folders": [
        {"name": "inbox", "path": str(tmp_path / "in"), "stable_s": 0.1, "poll_s": 0.1, "team": "post"}]}})
    stop = threading.Event()
    t = threading.Thread(target=run_connector, args=("folders", settings), daemon=True,
                         kwargs={"bus": bus, "blobs": blobs, "data_dir": tmp_path, "stop": stop, "registry": registry})
    t.start()
    wait_until(lambda: (tmp_path / "in").exists(), what="the folder")
    (tmp_path / "in" / "note.txt").write_text("hello")
    wait_until(lambda: registry.get("inbox").received == 1, what="the file")
    stop.set()
    t.join(10)
    assert not t.is_alive() and registry.get("inbox").state == "stopped"
    assert [i.metadata["team"] for i in raw_items(bus)] == ["post"]
    assert (tmp_path / "connectors" / "folders.db").exists()


def test_run_connector_serves_a_webhook_on_its_own_port(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                        registry: Registry) -> None:
    settings = ConnectorSettings.model_validate({"twilio": {"auth_token": "tok"}})
    port, stop = free_port(), threading.Event()
    t = threading.Thread(target=run_connector, args=("twilio", settings), daemon=True,
                         kwargs={"bus": bus, "blobs": blobs, "data_dir": tmp_path, "stop": stop, "port": port,
                                 "registry": registry})
    t.start()
    url = f"http://127.0.0.1:{port}/webhooks/twilio/sms"
    params = {"MessageSid": "SM1", "From": "+15550001", "Body": "hi", "NumMedia": "0"}

    def up() -> bool:
        try:
            return httpx.post(url, data={}).status_code == 403
        except httpx.TransportError:
            return False

    wait_until(up, what="the connector's HTTP server")
    r = httpx.post(url, data=params, headers={"X-Twilio-Signature": RequestValidator("tok").compute_signature(
        url, params)})
    stop.set()
    t.join(10)
    assert r.status_code == 200 and [i.idempotency_key for i in raw_items(bus)] == ["sms:SM1"]
