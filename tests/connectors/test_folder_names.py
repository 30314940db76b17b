"""File names that are not UTF-8 (a Latin-1 scanner share) are taken like any other, not retried forever."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.folder import FolderWatcher
from connectors.metrics import Registry
from connectors.settings import WatchedFolder
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import raw_items


def test_a_non_utf8_file_name_is_taken_with_a_printable_name_and_the_rest_flow(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    root = tmp_path / "drop"
    cfg = WatchedFolder(name="drop", path=str(root), channel="file", stable_s=0.0, watch="poll")
    watcher = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    latin1 = os.fsdecode(b"r\xe9clamation.txt")  # what Python makes of the bytes: a surrogate escape
    (root / latin1).write_bytes(b"my complaint about the noise")
    (root / "good.txt").write_bytes(b"a good letter beside it")
    assert watcher.scan_once() == 0
    assert watcher.scan_once() == 2
    items = {i.filename: i for i in raw_items(bus)}
    assert set(items) == {"r\\xe9clamation.txt", "good.txt"}
    assert items["r\\xe9clamation.txt"].source == "folder:drop:r\\xe9clamation.txt"
    assert sorted(p.name.split("-", 2)[-1] for p in (root / ".done").iterdir()) == sorted([latin1, "good.txt"])
    assert not list((root / ".failed").iterdir()) and watcher.failed == 0
    assert watcher.scan_once() == 0, "nothing is left to retry"
