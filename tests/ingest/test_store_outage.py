"""Issue 15.6: a database outage makes the stages wait, never dead-letter.  The store is real
PostgreSQL behind a TCP proxy that the test takes down (every connection cut, new ones refused)
and brings back mid-run: afterwards every item is filed exactly once, nothing is dead-lettered,
and the stages report the restarts the outage caused."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from api.settings import Settings
from api.wiring import open_runtime
from casestore.models import Document, Item, ItemFailure
from ingest.dead_letters import read_dead_letters
from ingest.intake import make_raw_item, publish_raw
from ingest.pipeline import PipelineRunner
from tests.connectors.conftest import free_port


class Proxy:
    """A TCP proxy to PostgreSQL that can be taken down (listener closed, live connections cut)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxied_pg(_postgres: Any) -> Iterator[tuple[str, Proxy]]:
    url = _postgres.create()
    parsed = make_url(url)
    proxy = Proxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    yield parsed.set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.down()
    _postgres.drop(url)


def email(n: int) -> bytes:
    return (f"From: Person {n} <p{n}@example.net>\r\nTo: cases@example.org\r\nSubject: question {n}\r\n"
            f"Message-ID: <outage-{n}@example.net>\r\n\r\nHello, this is my question number {n}.\r\n").encode()


@pytest.mark.postgres
def test_a_database_outage_mid_run_loses_nothing_and_dead_letters_nothing(
        tmp_path: Path, proxied_pg: tuple[str, Proxy]) -> None:
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
        proxy.down()
        publish_raw(rt.bus, raws[20:])  # more arrives while the database is down
        time.sleep(4)  # several retries' worth of outage
        assert runner.alive(), "a stage thread died of the outage"
        proxy.up()
        deadline = time.monotonic() + 90
        while filed() < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert filed() == total
        assert runner.alive()
        assert any("restarted" in state for state in runner.states().values()), runner.states()
    finally:
        runner.close()
    assert read_dead_letters(rt.bus) == []
    with rt.read_sessions() as session:
        assert session.scalar(select(func.count()).select_from(ItemFailure)) == 0
        docs = session.execute(select(Document.item_id, Document.part_index)).all()
        assert len(docs) == len(set(docs)) and {d[0] for d in docs} == {r.item_id for r in raws}
    rt.close()
