"""Uploads reach the bus off the event loop, the publishes of concurrent uploads in one commit.

``POST /api/v1/items`` used to store the blob, read the store and publish to the bus on the
event loop: each upload held it for its fsync and for its turn at the bus's write lock (behind
the stage processes' own writes), so every other request, a search too, waited behind them
(issue 15.12: search p95 790 ms under 20 uploaders).  Now the route stores the blob and reads
the store in the thread pool, and hands the RawItem to ``GroupPublisher``: one thread that
publishes whatever uploads are waiting in one ``publish_raw`` (one bus transaction, one sync)
and then answers each of them.  An upload is answered 202 only after its record is durable,
as before; an error of the bus reaches every upload of that batch.

``UploadAdmission`` (ASGI middleware) lets only a few uploads into the application at once
(``serve.upload_slots``): the rest wait before their body is read, costing the process nothing.
With all 20 uploaders let in, their multipart parsing, token checks and thread hops filled the
event loop's queue and the interpreter, and every search waited its turn behind them (search
p95 171 ms on a quiet machine).  The slot is given back when the upload's record is handed to the
publisher (``release_upload_slot``), so the wait for the bus commit still gathers many uploads
into one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.bus.port import Bus
from ingest.intake import publish_raw
from ingest.messages import RawItem

log = logging.getLogger(__name__)

_RELEASE_KEY = "casework.upload_slot_release"
IDLE_EXIT_S = 5.0  # the thread ends after this long without uploads (and starts again with the next)


class GroupPublisher:
    def __init__(self, bus: Bus, *, max_batch: int = 200) -> None:
        self.bus = bus
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[RawItem, Future[None]]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0

    async def publish(self, raw: RawItem) -> None:
        """Returns when ``raw`` is durable on the bus (raises what the bus raised)."""
        done: Future[None] = Future()
        with self._lock:
            self._queue.put((raw, done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="upload-publisher", daemon=True)
                self._thread.start()
        await asyncio.wrap_future(done)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                publish_raw(self.bus, [raw for raw, _ in batch])
            except BaseException as exc:  # every waiting upload gets the answer, never a hang
                for _, done in batch:
                    done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.batches += 1
            for _, done in batch:
                done.set_result(None)


class UploadAdmission:
    """At most ``slots`` requests to ``POST path`` inside the application at a time (pure ASGI middleware).

    A waiting upload has not had its body read: it costs the process nothing while searches and
    page loads go ahead.  Other requests pass untouched, and so does an upload with no credentials
    at all (no ``Authorization`` header, no ``session_cookie``): ``BodyLimits`` behind refuses it
    from its headers at once, so anonymous requests never queue ahead of real uploads.
    """

    def __init__(self, app: ASGIApp, *, path: str, slots: int, session_cookie: str = "") -> None:
        self.app = app
        self.path = path
        self.slots = max(1, slots)
        self._cookie = f"{session_cookie}=".encode() if session_cookie else b""
        self._semaphore: asyncio.Semaphore | None = None  # made on the server's event loop

    def _has_credentials(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization" or (name == b"cookie" and self._cookie and self._cookie in value):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != self.path
                or not self._has_credentials(scope)):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.slots)
        semaphore = self._semaphore
        await semaphore.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                semaphore.release()

        scope[_RELEASE_KEY] = release
        try:
            await self.app(scope, receive, send)
        finally:
            release()


def release_upload_slot(scope: Scope) -> None:
    """Give the request's ``UploadAdmission`` slot back early (its CPU work is done); idempotent."""
    release: Callable[[], None] | None = scope.get(_RELEASE_KEY)
    if release is not None:
        release()
