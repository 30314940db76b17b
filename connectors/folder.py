"""Watched folders: files dropped in become items on ``intake.raw``.

A file is taken only once it is complete: unchanged (size and mtime) across two scans and for
at least ``stable_s``, or, with ``completion="marker"``, once the scanner has written the marker
file ``FILE<marker_suffix>`` next to it. Scans run when watchfiles reports a change (inotify)
and at least every ``poll_s``; where file events are not available (network shares, inotify
limits) the watcher falls back to polling alone.

A taken file is published and moved to ``.done/``; one that cannot be taken goes to
``.failed/`` with a ``.error.txt`` saying why, and the watcher carries on with the rest.
Multi-page PDF/TIFF batches can be split at separator pages (see ``connectors.separators``).
The folder's settings give each item its channel, team, doc_type and extra metadata; with
``subfolder_key`` the first subfolder's name is recorded too (``scans/claims/x.pdf`` ->
``team=claims``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from connectors.emit import Emitted, Emitter
from connectors.metrics import Registry
from connectors.separators import split_batch
from connectors.settings import WatchedFolder
from connectors.state import StateStore
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.intake import infer_channel, printable
from ingest.messages import Channel

log = logging.getLogger(__name__)

MAX_FILES_PER_SCAN = 500


@dataclass
class Taken:
    emitted: list[Emitted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # parts of the file that were refused (bad rows)


class FolderWatcher:
    kind = "folder"

    def __init__(self, root: Path, *, bus: Bus, blobs: BlobStore, poll_s: float = 1.0,
                 stop: threading.Event | None = None, config: WatchedFolder | None = None,
                 name: str | None = None, state: StateStore | None = None, registry: Registry | None = None,
                 stable_s: float | None = None) -> None:
        self.root = Path(root)
        self.config = config or WatchedFolder(path=str(root), poll_s=poll_s, stable_s=0.0)
        self.poll_s = poll_s if config is None else config.poll_s
        self.stable_s = self.config.stable_s if stable_s is None else stable_s
        self.stop = stop or threading.Event()
        self.name = name or self.config.name or f"{self.kind}:{self.root.name}"
        self.emitter = Emitter(self.name, bus=bus, blobs=blobs, state=state, registry=registry, kind=self.kind)
        self._seen: dict[Path, tuple[int, int]] = {}
        self._outage_said = 0.0  # monotonic time an outage (a full disk) was last logged
        self.watching = "poll"
        for sub in (self.root, self.root / ".done", self.root / ".failed"):
            sub.mkdir(parents=True, exist_ok=True)

    @property
    def received(self) -> int:
        return self.emitter.stats.received

    @property
    def failed(self) -> int:
        return self.emitter.stats.failed

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self.emitter.stats.set_state("running")
        try:
            if self.config.watch != "poll" and self._run_events():
                return
            self._run_polling()
        finally:
            self.emitter.stats.set_state("stopped")

    def _run_events(self) -> bool:
        """Scan on every change watchfiles reports, and every poll_s; False if events are unavailable."""
        try:
            from watchfiles import watch
        except ImportError:
            log.warning("%s: watchfiles is not installed; polling %s every %.1fs", self.name, self.root, self.poll_s)
            return False
        self.watching = "events"
        log.info("%s: watching %s (file events, and a scan every %.1fs)", self.name, self.root, self.poll_s)
        try:
            for _changes in watch(self.root, stop_event=self.stop, rust_timeout=max(int(self.poll_s * 1000), 50),
                                  yield_on_timeout=True, debounce=200, step=50,
                                  watch_filter=lambda _change, path: "/." not in path[len(str(self.root)):]):
                self._scan_safely()
                if self.stop.is_set():
                    break
        except (OSError, RuntimeError) as exc:
            if self.config.watch == "events":
                raise
            log.warning("%s: file events unavailable for %s (%s); falling back to polling", self.name, self.root, exc)
            self.watching = "poll"
            return False
        return True

    def _run_polling(self) -> None:
        log.info("%s: polling %s every %.1fs", self.name, self.root, self.poll_s)
        while not self.stop.is_set():
            self._scan_safely()
            self.stop.wait(self.poll_s)

    def _scan_safely(self) -> None:
        try:
            self.scan_once()
        except Exception as exc:
            if not getattr(exc, "outage", False):
                log.exception("%s: scan of %s failed; trying again", self.name, self.root)
                return
            # The bus or blob store is down or the disk is full: the files wait where they are.
            # Said once a minute at most, not on every poll.
            now = time.monotonic()
            if now - self._outage_said >= 60.0:
                self._outage_said = now
                log.warning("%s: taking nothing from %s for now: %s", self.name, self.root, exc)

    # -- scanning ---------------------------------------------------------------------------
    def _candidates(self) -> dict[Path, tuple[int, int, float]]:
        found: dict[Path, tuple[int, int, float]] = {}
        marker = self.config.marker_suffix if self.config.completion == "marker" else None
        exts = {e.lower() for e in self.config.extensions}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if any(p.startswith(".") for p in rel.parts) or not path.is_file():
                continue
            if marker and path.name.endswith(marker):
                continue
            if exts and path.suffix.lower() not in exts:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found[path] = (st.st_size, st.st_mtime_ns, st.st_mtime)
        return found

    def scan_once(self) -> int:
        """Take every complete file; returns how many files were taken (or failed).

        The items of all files taken in one scan are published with one flush, and only then are
        the files moved to ``.done/``: a crash in between leaves them in place, to be taken
        (as the same items) again.
        """
        current = self._candidates()
        now = time.time()
        ready: list[Path] = []
        if self.config.completion == "marker":
            ready = [p for p in current if p.with_name(p.name + self.config.marker_suffix).exists()]
        else:
            for path, (size, mtime_ns, mtime) in current.items():
                if self._seen.get(path) == (size, mtime_ns) and now - mtime >= self.stable_s:
                    ready.append(path)
        ready = ready[:MAX_FILES_PER_SCAN]
        self._seen = {p: (s, m) for p, (s, m, _) in current.items() if p not in ready}
        taken: list[tuple[Path, Taken]] = []
        for path in ready:
            result = self._take_file(path)
            if result is not None:
                taken.append((path, result))
        try:
            self.emitter.commit()
        except Exception:
            log.exception("%s: could not publish %d file(s); they stay in %s for the next scan", self.name,
                          len(taken), self.root)
            return len(ready)
        for path, result in taken:
            self._done(path, result)
        return len(ready)

    def _take_file(self, path: Path) -> Taken | None:
        rel = path.relative_to(self.root)
        queued = self.emitter.savepoint()
        try:
            return self.take(path, rel, path.read_bytes())
        except Exception as exc:
            self.emitter.rollback_to(queued)  # nothing of a refused file is published
            if getattr(exc, "outage", False):
                self.emitter.rollback_to()  # a full disk, a bus down: the scan's files stay for the next one
                raise
            self.emitter.failed(f"{self.root / rel}", exc)
            dest = self._unique(self.root / ".failed" / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}")
            shutil.move(str(path), dest)
            dest.with_name(dest.name + ".error.txt").write_text(printable(f"{type(exc).__name__}: {exc}") + "\n")
            path.with_name(path.name + self.config.marker_suffix).unlink(missing_ok=True)
            log.error("%s: %s moved to %s", self.name, rel, dest)
            return None

    def _done(self, path: Path, taken: Taken) -> None:
        rel = path.relative_to(self.root)
        first = taken.emitted[0].item.item_id[:8] if taken.emitted else "none"
        dest = self._unique(self.root / ".done" / f"{time.strftime('%Y%m%dT%H%M%S')}-{first}-{path.name}")
        shutil.move(str(path), dest)
        path.with_name(path.name + self.config.marker_suffix).unlink(missing_ok=True)
        if taken.errors:
            dest.with_name(dest.name + ".errors.txt").write_text("\n".join(taken.errors) + "\n")
        log.info("%s: %s taken as %d item(s) (%d duplicate, %d refused parts)", self.name, rel, len(taken.emitted),
                 sum(e.duplicate for e in taken.emitted), len(taken.errors))

    @staticmethod
    def _unique(dest: Path) -> Path:
        n = 1
        candidate = dest
        while candidate.exists():
            candidate = dest.with_name(f"{dest.stem}.{n}{dest.suffix}")
            n += 1
        return candidate

    # -- what a file becomes (subclasses override) -------------------------------------------
    def metadata_for(self, rel: Path) -> dict[str, str]:
        cfg = self.config
        meta = dict(cfg.metadata)
        if cfg.team:
            meta["team"] = cfg.team
        if cfg.doc_type:
            meta["doc_type"] = cfg.doc_type
        if cfg.subfolder_key and len(rel.parts) > 1:
            meta[cfg.subfolder_key] = rel.parts[0]
        return meta

    def channel_for(self, path: Path) -> Channel:
        if self.config.channel == "auto":
            return infer_channel(path)
        return self.config.channel

    def take(self, path: Path, rel: Path, data: bytes) -> Taken:
        """Publish the file (or each document of a split batch)."""
        channel = self.channel_for(path)
        meta = self.metadata_for(rel)
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        source = f"folder:{self.name}:{rel}"
        segments = split_batch(data, path.suffix, mode=self.config.split, blank_ink_ratio=self.config.blank_ink_ratio,
                               barcode=self.config.separator_barcode)
        if len(segments) == 1 and segments[0].data is data:
            return Taken([self.emitter.emit(data, channel=channel, filename=path.name, source=source,
                                            metadata=meta, source_time=mtime, defer=True)])
        batch = hashlib.sha256(data).hexdigest()
        taken = Taken()
        for seg in segments:
            pages = f"{seg.pages[0]}-{seg.pages[-1]}"
            seg_meta = {**meta, "batch_sha256": batch, "batch_pages": ",".join(map(str, seg.pages)),
                        "batch_file": path.name}
            taken.emitted.append(self.emitter.emit(
                seg.data, channel=channel, filename=f"{path.stem}-p{pages}{seg.ext}", source=f"{source}#p{pages}",
                source_id=f"batch:{batch}:pages:{pages}", metadata=seg_meta, source_time=mtime, defer=True))
        return taken
