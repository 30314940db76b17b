"""Issue 15.7: `casework ingest` with its data directory on a small file system that fills up.

A real file system (tmpfs, mounted here as root), the real CLI: it must stop taking work with one
"disk full at <data dir>" message (not a flood of retries that blocks on its output pipe and runs
past its own --timeout), exit non-zero, keep what it stored, and a re-run after space returns must
file every item exactly once.  Skipped, with the reason, where mounting is not permitted.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from benchmarks.pipeline_throughput import make_emails
from tests.small_fs import fill, small_fs  # noqa: F401 - the fixture

CASEWORK = [sys.executable, "-m", "api"]
ITEMS = 150
LEAVE_FREE_KB = 1024  # what the filler leaves: some items go through, then the disk is full


def _counts(data: Path) -> tuple[int, int, int]:
    with sqlite3.connect(data / "casework.db") as conn:
        items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        docs, distinct = conn.execute("SELECT count(*), count(DISTINCT item_id) FROM documents").fetchone()
    return int(items), int(docs), int(distinct)


def test_ingest_on_a_full_disk_stops_with_one_message_and_a_rerun_finishes(
    tmp_path: Path, small_fs: Path  # noqa: F811
) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    make_emails(mail, ITEMS, run_id=f"full{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    data = small_fs / "data"
    env["CASEWORK_DATA_DIR"] = str(data)
    first = mail / "000000.eml"
    started = subprocess.run([*CASEWORK, "ingest", str(first), "--json"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    filler = fill(small_fs, LEAVE_FREE_KB)

    full = subprocess.run([*CASEWORK, "ingest", str(mail), "--json", "--timeout", "60"], env=env,
                          capture_output=True, text=True, timeout=150)
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 75, full.stderr[-3000:]
    assert sum("disk full at" in line for line in lines) == 1, full.stderr[-3000:]
    assert f"disk full at {data}" in full.stderr
    assert len(lines) <= 3, full.stderr[-3000:]  # one message, not a flood
    assert "Traceback" not in full.stderr
    filler.unlink()  # before counting: opening the WAL database may need to write its -shm/-wal files
    filed_while_full = _counts(data)[0]  # nothing runs now, so the count is what the full disk left
    assert filed_while_full < ITEMS  # the disk did fill up before the end

    rerun = subprocess.run([*CASEWORK, "ingest", str(mail), "--json", "--timeout", "120"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    items, docs, distinct = _counts(data)
    assert items == ITEMS
    assert distinct == ITEMS and docs == ITEMS  # each email one document, none twice
