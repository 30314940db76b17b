"""A connector's small durable state: keys already published, and named values (IMAP UIDs).

One SQLite file per connector under ``DATA_DIR/connectors/``. The order is always publish,
flush, then ``mark``: a crash in between publishes the same item again, under the same item id,
which the pipeline ignores; nothing is lost.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA busy_timeout = 30000")
        # NORMAL: a power cut may forget the last marks; those items are then published again under
        # the same item id, which the pipeline ignores. Nothing is lost either way.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, item_id TEXT NOT NULL, at REAL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @classmethod
    def for_connector(cls, data_dir: Path, name: str) -> StateStore:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return cls(Path(data_dir) / "connectors" / f"{safe}.db")

    def seen(self, key: str) -> str | None:
        """The item id published for ``key``, or None."""
        with self._lock:
            row = self._conn.execute("SELECT item_id FROM seen WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def mark(self, key: str, item_id: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO seen (key, item_id, at) VALUES (?, ?, ?)",
                               (key, item_id, time.time()))

    def get(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
