"""The watched drop folder: files dropped in become items on ``intake.raw``.

Foundation version: a polling scanner that takes a file only once its size and mtime have been
stable across two scans (a scanner or a copy still writing it is left alone), publishes it, and
moves it to ``.done/`` (or ``.failed/`` with a ``.error.txt`` saying why), so nothing is lost
and nothing is taken twice. Separator pages, marker files, per-folder channel/team/type and
watchfiles events arrive with the connectors issue.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.intake import infer_channel, make_raw_item, publish_raw

log = logging.getLogger(__name__)


class FolderWatcher:
    def __init__(self, root: Path, *, bus: Bus, blobs: BlobStore, poll_s: float = 1.0,
                 stop: threading.Event | None = None) -> None:
        self.root = Path(root)
        self.bus = bus
        self.blobs = blobs
        self.poll_s = poll_s
        self.stop = stop or threading.Event()
        self._seen: dict[Path, tuple[int, float]] = {}
        self.received = 0
        self.failed = 0
        for sub in (self.root, self.root / ".done", self.root / ".failed"):
            sub.mkdir(parents=True, exist_ok=True)

    def run(self) -> None:
        log.info("watching drop folder %s every %.1fs", self.root, self.poll_s)
        while not self.stop.is_set():
            try:
                self.scan_once()
            except Exception:
                log.exception("drop folder scan of %s failed; trying again", self.root)
            self.stop.wait(self.poll_s)

    def scan_once(self) -> int:
        """Take every file that has been stable since the last scan; returns how many were taken."""
        current: dict[Path, tuple[int, float]] = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if not path.is_file() or any(p.startswith(".") for p in rel.parts):
                continue
            st = path.stat()
            current[path] = (st.st_size, st.st_mtime)
        ready = [p for p, sig in current.items() if self._seen.get(p) == sig]
        self._seen = {p: sig for p, sig in current.items() if p not in ready}
        for path in ready:
            self._take(path)
        return len(ready)

    def _take(self, path: Path) -> None:
        rel = path.relative_to(self.root)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        try:
            raw = make_raw_item(blobs=self.blobs, data=path.read_bytes(), channel=infer_channel(path),
                                filename=path.name, source=f"folder:{rel}")
            publish_raw(self.bus, [raw])
        except Exception as exc:
            self.failed += 1
            dest = self.root / ".failed" / f"{stamp}-{path.name}"
            shutil.move(str(path), dest)
            dest.with_name(dest.name + ".error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
            log.error("drop folder: %s could not be taken (%s); moved to %s", rel, exc, dest)
            return
        self.received += 1
        shutil.move(str(path), self.root / ".done" / f"{stamp}-{raw.item_id[:8]}-{path.name}")
        log.info("drop folder: %s taken as item %s", rel, raw.item_id)
