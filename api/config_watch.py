"""Notice a changed calendar or case type while `casework serve` (or a file-stage worker) runs.

Calendars and case types are loaded once into the process (``Runtime.calendars``,
``Runtime.work``).  ``ConfigWatch`` looks every ``CASEWORK_WORK__RELOAD_CHECK_S`` seconds at a
cheap fingerprint of what they come from:

* the files of the calendars folder and the case-types folder (name, size, modification time:
  a handful of ``stat`` calls, no reading);
* the store's case-type versions (``count`` and newest ``loaded_at`` of ``case_type_versions``,
  a small table): `casework casetype load` run elsewhere on a shared folder shows here.

When the fingerprint changes it reloads both (``Runtime.reload_work``): requests use the new
calendars and types at once, the file stage from its next batch; running cases keep the version
they started with (the store has it).  A folder that no longer loads is logged and the running
configuration stays until the files are fixed.  Clocks already running keep their due times until
`casework calendar recompute NAME` re-computes them (in batches; a calendar change may move a
million due times, which is not something to do inside a serving process's check).

`casework worker clock` needs no watch: the loop holds no calendar (the moments are in the clock
rows) and reads each case's definition from the store by version and digest.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from api.wiring import Runtime
from casestore.errors import CaseStoreError
from casestore.work.models import CaseTypeVersion

log = logging.getLogger(__name__)

Fingerprint = tuple[Any, ...]


def folder_state(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime in ns) of every file under ``folder``; empty when it is missing."""
    found: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:  # removed meanwhile: the next look sees the folder as it is then
                continue
            found.append((str(path.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return tuple(found)


class ConfigWatch:
    """Reload ``rt``'s calendars and case types when their fingerprint changes (see module doc)."""

    def __init__(self, rt: Runtime, *, interval_s: float, stop: threading.Event | None = None) -> None:
        self.rt = rt
        self.interval_s = interval_s
        self.stop = stop or threading.Event()
        self.reloads = 0
        self.errors = 0
        self._thread: threading.Thread | None = None
        folders = self._folders()
        rt.work  # noqa: B018 - loaded (and its versions stored) now, so the store part is read after it
        self._seen: Fingerprint = (folders, self._store())

    def _folders(self) -> Fingerprint:
        s = self.rt.settings
        return folder_state(s.calendars_dir), folder_state(s.case_types_dir)

    def _store(self) -> Fingerprint:
        with self.rt.read_sessions() as session:
            count, newest = session.execute(select(func.count(), func.max(CaseTypeVersion.loaded_at))).one()
        return int(count), newest

    def check(self) -> bool:
        """Reload when something changed since the last look; whether it reloaded."""
        folders = self._folders()
        current = (folders, self._store())
        if current == self._seen:
            return False
        log.info("calendars or case types changed: loading them again")
        try:
            self.rt.reload_work()
        except (CaseStoreError, ValueError, OSError) as exc:
            self.errors += 1
            self._seen = current  # say it once per change, not at every look
            log.error("the changed calendars or case types do not load, the running ones stay: %s", exc)
            return False
        self._seen = (folders, self._store())  # our own load may have stored a new version
        self.reloads += 1
        work = self.rt.work
        log.info("configuration reloaded: %d case types (%s), %d calendars", len(work.case_types),
                 ", ".join(f"{n} v{t.version}" for n, t in sorted(work.case_types.items())), len(work.calendars))
        return True

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a store that is down now is tried again at the next look
                self.errors += 1
                log.exception("configuration check failed; trying again in %.1fs", self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="config-watch", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def start_watch(rt: Runtime, stop: threading.Event | None = None) -> ConfigWatch | None:
    """A running watch for this process, or None when ``CASEWORK_WORK__RELOAD_CHECK_S`` is 0."""
    interval = rt.settings.work.reload_check_s
    if interval <= 0:
        return None
    watch = ConfigWatch(rt, interval_s=interval, stop=stop)
    watch.start()
    log.info("watching the calendars and case types for changes every %.1fs", interval)
    return watch
