"""Hostile drops: a file name that is not UTF-8 (a Latin-1 scanner share) is taken like any other, not
retried forever; a scan batch that is a PDF bomb is refused to ``.failed`` with the reason, never rendered."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from connectors.folder import FolderWatcher
from connectors.metrics import Registry
from connectors.settings import WatchedFolder
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import raw_items
from tests.ingest.hostile_files import big_pages, flate_bomb


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


def test_a_scan_batch_that_is_a_pdf_bomb_goes_to_failed_and_huge_pages_are_not_rendered(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    root = tmp_path / "scans"
    cfg = WatchedFolder(name="batches", path=str(root), channel="scan", split="blank", stable_s=0.0, watch="poll")
    watcher = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    (root / "bomb.pdf").write_bytes(flate_bomb(2 << 30))
    (root / "huge.pdf").write_bytes(big_pages(200, pages=2))  # 60,000 px a side at 150 dpi: never rendered
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    watcher.scan_once()
    assert watcher.scan_once() == 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - before < 200
    [failed] = [p for p in (root / ".failed").iterdir() if p.name.endswith(".error.txt")]
    assert "bomb.pdf" in failed.name and "max_pdf_stream_mb" in failed.read_text()
    assert [i.filename for i in raw_items(bus)] == ["huge.pdf"], "taken whole: no page could be checked"
