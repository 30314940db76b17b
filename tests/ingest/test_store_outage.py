"""Issue 15.6: a database outage makes the stages wait, never dead-letter.  The store is real
PostgreSQL behind a TCP gate (``tests.tcp_gate``) that the test takes down (every connection cut, new ones refused)
and brings back mid-run: afterwards every item is filed exactly once, nothing is dead-lettered,
and the stages report the restarts the outage caused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from api.settings import Settings
from api.wiring import open_runtime
from casestore.models import Item
from ingest.dead_letters import read_dead_letters
from ingest.intake import make_raw_item, publish_raw
from ingest.pipeline import PipelineRunner
from tests.filed_once import assert_filed_once
from tests.tcp_gate import TcpGate


@pytest.fixture
def proxied_pg(_postgres: Any) -> Iterator[tuple[str, TcpGate]]:
    url = _postgres.create()
    parsed = make_url(url)
    proxy = TcpGate(parsed.host or "127.0.0.1", parsed.port or 5432)
    proxy.open()
    yield parsed.set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.shut()
    _postgres.drop(url)


def restarts(runner: PipelineRunner) -> int:
    """The stages' restarts so far, as ``states()`` reports them ("restarted 2x; last: ...")."""
    return sum(int(m.group(1)) for state in runner.states().values() for m in re.finditer(r"restarted (\d+)x", state))


def email(n: int) -> bytes:
    return (f"From: Person {n} <p{n}@example.net>\r\nTo: cases@example.org\r\nSubject: question {n}\r\n"
            f"Message-ID: <outage-{n}@example.net>\r\n\r\nHello, this is my question number {n}.\r\n").encode()


@pytest.mark.postgres
def test_a_database_outage_mid_run_loses_nothing_and_dead_letters_nothing(
        tmp_path: Path, proxied_pg: tuple[str, TcpGate]) -> None:
    url, proxy = proxied_pg
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "db": {"url": url},
                                        "worker": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0}})
    rt = open_runtime(settings)
    runner = PipelineRunner(rt.pipeline_parts())
    total = 60
    try:
        raws = [make_raw_item(blobs=rt.blobs, data=email(n), channel="email", filename=f"{n}.eml",
                              source="test", source_id=f"outage-{n}") for n in range(total)]

        def filed() -> int:
            with rt.read_sessions() as session:
                return int(session.scalar(select(func.count()).select_from(Item)) or 0)

        publish_raw(rt.bus, raws[:20])
        runner.start()
        deadline = time.monotonic() + 60
        while filed() < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        proxy.shut()
        publish_raw(rt.bus, raws[20:])  # more arrives while the database is down
        deadline = time.monotonic() + 60  # several retries' worth of outage (was a fixed 4 s sleep)
        while restarts(runner) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert restarts(runner) >= 3, runner.states()
        assert runner.alive(), "a stage thread died of the outage"
        proxy.open()
        deadline = time.monotonic() + 90
        while filed() < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert filed() == total
        assert runner.alive()
        assert any("restarted" in state for state in runner.states().values()), runner.states()
    finally:
        runner.close()
    assert read_dead_letters(rt.bus) == []
    assert_filed_once(rt.engine, [r.item_id for r in raws], only=True)
    rt.close()
