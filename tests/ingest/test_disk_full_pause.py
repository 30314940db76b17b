"""Issue 15.7 for `casework serve`: a full disk pauses the stages (no dead letters, no stage
thread lost) and they resume by themselves when space returns.  A real tmpfs holds the data
directory (skipped, with the reason, where mounting is not permitted)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import func, select

from api.settings import Settings
from api.wiring import open_runtime
from casestore.models import Item
from ingest.dead_letters import read_dead_letters
from ingest.intake import make_raw_item, publish_raw
from ingest.pipeline import PipelineRunner
from tests.filed_once import assert_filed_once
from tests.small_fs import fill, small_fs  # noqa: F401 - the fixture

TOTAL = 40


def email(n: int) -> bytes:
    return (f"From: Person {n} <p{n}@example.net>\r\nTo: cases@example.org\r\nSubject: question {n}\r\n"
            f"Message-ID: <full-{n}@example.net>\r\n\r\nHello, this is my question number {n}.\r\n").encode()


def test_a_full_disk_pauses_the_stages_and_they_resume_when_space_returns(small_fs: Path) -> None:  # noqa: F811
    data = small_fs / "data"
    settings = Settings.model_validate({"data_dir": data,
                                        "worker": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0}})
    rt = open_runtime(settings)
    parts = rt.pipeline_parts()
    raws = [make_raw_item(blobs=rt.blobs, data=email(n), channel="email", filename=f"{n}.eml",
                          source="test", source_id=f"full-{n}") for n in range(TOTAL)]
    publish_raw(rt.bus, raws)
    for db in ("bus.db", "casework.db"):  # no WAL pages left over to write into
        with sqlite3.connect(data / db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = fill(small_fs, 0)
    runner = PipelineRunner(parts)

    def filed() -> int:
        with rt.read_sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Item)) or 0)

    try:
        runner.start()
        deadline = time.monotonic() + 60
        while not runner.disk_full() and time.monotonic() < deadline:
            time.sleep(0.1)
        paused = runner.disk_full()
        assert paused and all("disk full at" in why for why in paused), runner.states()
        assert any(state.startswith("paused") for state in runner.states().values())
        assert filed() < TOTAL
        assert runner.alive(), "a stage thread died of the full disk"
        filler.unlink()
        deadline = time.monotonic() + 90
        while filed() < TOTAL and time.monotonic() < deadline:
            time.sleep(0.2)
        assert filed() == TOTAL
        deadline = time.monotonic() + 10
        while runner.disk_full() and time.monotonic() < deadline:  # a paused stage resumes on its next batch
            time.sleep(0.1)
        assert runner.disk_full() == []
        assert runner.alive()
    finally:
        runner.close()
    assert read_dead_letters(rt.bus) == []
    assert_filed_once(rt.engine, [r.item_id for r in raws], only=True)
    rt.close()
