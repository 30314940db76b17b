"""The WAL checkpoint of commits made without SQLite's automatic one (get-next's claims): the WAL is
copied into the database file, and starts again from its beginning even while writers go on."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from casestore.db import WAL_RESTART_FRAMES, WriterBusy, make_engine, sqlite_checkpoint, sqlite_immediate

PAGE = 4096
ROW = "x" * 3000  # one page of the table per row


def _store(tmp_path: Path) -> tuple[Engine, Path]:
    path = tmp_path / "wal.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine, Path(f"{path}-wal")


def _insert(engine: Engine, *, wait: bool, checkpoint: bool | None = None) -> None:
    with sqlite_immediate(engine, wait=wait, checkpoint=checkpoint) as cursor:
        cursor.execute("INSERT INTO t (v) VALUES (?)", (ROW,))


def test_commits_without_the_automatic_checkpoint_leave_it_to_the_caller(tmp_path: Path) -> None:
    engine, wal = _store(tmp_path)
    for _ in range(WAL_RESTART_FRAMES + 300):  # past SQLite's automatic checkpoint: it would restart the WAL
        _insert(engine, wait=True, checkpoint=False)
    grown = os.path.getsize(wal)
    assert grown > (WAL_RESTART_FRAMES + 200) * PAGE
    busy, frames, copied = sqlite_checkpoint(engine)
    assert busy == 0 and frames == copied and frames > WAL_RESTART_FRAMES
    for _ in range(10):
        _insert(engine, wait=True, checkpoint=False)
    assert os.path.getsize(wal) == grown  # written from its start again, not appended to
    busy, frames, copied = sqlite_checkpoint(engine)
    assert frames < 100 and copied == frames
    for _ in range(WAL_RESTART_FRAMES + 300):  # the default: SQLite checkpoints (and restarts) by itself
        _insert(engine, wait=True)
    assert os.path.getsize(wal) == grown
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2 * (WAL_RESTART_FRAMES + 300) + 10
    engine.dispose()


def test_the_wal_starts_again_while_a_writer_keeps_committing(tmp_path: Path) -> None:
    """A passive checkpoint alone never catches up with a writer that commits while it copies, and
    the WAL grows with every commit; the second pass under the writer turn lets it start again."""
    engine, wal = _store(tmp_path)
    stop = threading.Event()
    written = [0]

    def writer() -> None:  # as get-next on the event loop: no waiting, no automatic checkpoint
        while not stop.is_set():
            try:
                _insert(engine, wait=False)
                written[0] += 1
            except WriterBusy:
                time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while written[0] < 6 * WAL_RESTART_FRAMES and time.monotonic() < deadline:
            time.sleep(0.05)
            sqlite_checkpoint(engine)
    finally:
        stop.set()
        thread.join(30)
    assert written[0] >= 6 * WAL_RESTART_FRAMES
    # each commit writes ~3 frames (the row's page, the tree above it, the file's header page): the
    # WAL file holds a few checkpoints' worth of them, not every commit's (without the second pass: all)
    assert os.path.getsize(wal) < written[0] * PAGE
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == written[0]
    engine.dispose()
