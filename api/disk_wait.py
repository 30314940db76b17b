"""`casework serve` on a full disk: start, say so once, take no work, go on when space returns.

On a full file system the store cannot even be opened (SQLite must create its shared-memory file
to read a WAL database), the bus cannot append and the drop folder cannot take a file.  So
before serve opens anything it checks the data directory's file system; while it has less than
``MIN_FREE_BYTES`` free (or opening the store fails for want of space) serve:

- logs "disk full at PATH" once (and once more when space is back),
- answers every HTTP request on its port with 503 and that message (``/health`` included, so a
  load balancer or an operator sees why), with ``Retry-After``,
- takes no work: no stage, connector, sender or clock runs; nothing is read or written,
- checks again every ``poll_s`` and then starts as usual on the same port.

SIGTERM or Ctrl-C while waiting ends serve cleanly.  A disk that fills up later is the stages'
business: they pause and resume by themselves (``ingest.pipeline``, issue 15.7).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 20  # below this the SQLite store, bus and blobs cannot do useful work
T = TypeVar("T")


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (a data directory not created yet)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    st = os.statvfs(existing_ancestor(path))
    return int(st.f_bavail * st.f_frsize)


def has_space(path: Path) -> bool:
    return free_bytes(path) >= MIN_FREE_BYTES


def _waiting_app(message: str) -> Starlette:
    async def unavailable(request: Request) -> JSONResponse:
        return JSONResponse({"status": message, "detail": message}, status_code=503, headers={"Retry-After": "10"})

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", unavailable, methods=methods)])


@contextmanager
def _answering(host: str, port: int, message: str) -> Iterator[None]:
    """A small server on the serve port that answers 503 ``message`` while the block runs."""
    server = uvicorn.Server(uvicorn.Config(_waiting_app(message), host=host, port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="serve-waiting-for-space", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def open_when_space(data_dir: Path, open_fn: Callable[[], T], *, host: str, port: int, poll_s: float = 2.0,
                    stop: threading.Event | None = None) -> T | None:
    """``open_fn()`` once the file system of ``data_dir`` has space (see the module docstring);
    None if told to stop while waiting.  An error of ``open_fn`` is raised unless the disk is full."""
    stop = stop or threading.Event()
    where = existing_ancestor(data_dir)
    said = False
    while True:
        if has_space(data_dir):
            try:
                opened = open_fn()
            except Exception:
                if has_space(data_dir):
                    raise
            else:
                if said:
                    log.warning("space at %s again (%d bytes free): casework serve starts taking work", where,
                                free_bytes(data_dir))
                return opened
        message = f"disk full at {where}: casework serve takes no work until space is freed there"
        if not said:
            log.error("%s (%d bytes free; checking every %.0f s)", message, free_bytes(data_dir), poll_s)
            said = True
        with _stop_on_signals(stop), _answering(host, port, message):  # only while waiting: a stop ends the wait
            while not stop.wait(poll_s) and not has_space(data_dir):
                pass
        if stop.is_set():
            log.info("casework serve stopped while waiting for space at %s", where)
            return None
