"""`casework serve`'s access log: one line per HTTP request, kept off the request's own path.

Each line says when the request ended, the client (``host:port``; the forwarded client when
``serve.trusted_proxies`` names the proxy), the method, the path, the status and how long the request
took, through the ``casework.access`` logger (INFO, %-style arguments), so it goes wherever the
process's log goes, in its format: text, or JSON with ``client``, ``method``, ``path``, ``status`` and
``duration_ms`` as fields of their own.  A query string's values are left out (search terms,
one-time codes, cursors): the path keeps the parameters' names only (``/api/v1/search?q&limit``).

Why not uvicorn's access log: profiling `casework serve` under the get-next benchmark, uvicorn's line
cost ~0.25 ms of the server's CPU per request (a tenth of a get-next), all of it in the event loop
thread that every request waits on: a ``LogRecord`` with its caller lookup, a copy of the record,
an ``HTTPStatus`` lookup, the formatting and a write and flush per line (BENCHMARKS.md, issue 10).
Here the request path only appends a tuple to a deque; a thread turns the waiting tuples into log
records a few times a second, so formatting and writing are done in batches.  The price: a line
reaches the log up to ``interval_s`` after its request, and a process killed with SIGKILL loses
at most that much of its log (an orderly stop writes every line first).  If the log cannot keep
up, at most ``max_pending`` lines wait; newer ones are dropped and counted in a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
ACCESS_LOGGER = "casework.access"
FORMAT = '%s - "%s %s" %d %.1f ms'

# (ended at (epoch s), client, method, root path + path, query string, status, duration (s))
Entry = tuple[float, Any, str, str, bytes, int, float]


def shown_path(path: str, query: bytes) -> str:
    """The path as logged: percent-quoted (no control characters can reach the log) and the query's
    parameter names without their values."""
    shown = quote(path, safe="/:@!$&'()*+,;=-._~%")
    if not query:
        return shown
    names = (part.split(b"=", 1)[0] for part in query.split(b"&") if part)
    return shown + "?" + "&".join(quote(name.decode("latin-1"), safe="%-._~") for name in names)


def client_of(client: Any) -> str:
    if not client:
        return "-"
    host, port = client[0], client[1] if len(client) > 1 else None
    return f"{host}:{port}" if port is not None else str(host)


class AccessLines:
    """The waiting lines and the thread that logs them every ``interval_s`` seconds."""

    def __init__(
        self, *, interval_s: float = 0.2, max_pending: int = 100_000, logger: logging.Logger | None = None
    ) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._pending: deque[Entry] = deque()
        self._dropped = 0
        self._stop = threading.Event()
        self._drain_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def add(self, entry: Entry) -> None:
        """From the request's path: a deque append (thread-safe, no lock)."""
        if len(self._pending) >= self.max_pending:
            self._dropped += 1
            return
        self._pending.append(entry)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.drain()
            except Exception:  # a broken handler must not end the access log for good
                log.exception("access log: writing lines failed")

    def drain(self) -> int:
        """Log every waiting line now; how many."""
        logger = self.logger
        written = 0
        with self._drain_lock:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                log.warning("access log: %d line(s) dropped: the log did not keep up", dropped)
            if not logger.isEnabledFor(logging.INFO):
                self._pending.clear()
                return 0
            pending = self._pending
            while pending:
                ended, client, method, path, query, status, took = pending.popleft()
                shown, ms, who = shown_path(path, query), round(took * 1000, 1), client_of(client)
                record = logger.makeRecord(
                    logger.name,
                    logging.INFO,
                    __file__,
                    0,
                    FORMAT,
                    (who, method, shown, status, ms),
                    None,
                    func="access",
                    extra={"client": who, "method": method, "path": shown, "status": status, "duration_ms": ms},
                )
                record.created = ended  # when the request ended, not when its line was written
                record.msecs = (ended - int(ended)) * 1000
                logger.handle(record)
                written += 1
        return written

    def close(self) -> None:
        """Stop the thread and log what is still waiting."""
        self._stop.set()
        self._thread.join(5)
        self.drain()


class AccessLog:
    """Pure ASGI middleware: notes each HTTP request's status and duration for ``AccessLines``."""

    def __init__(self, app: ASGIApp, lines: AccessLines) -> None:
        self.app = app
        self.lines = lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:  # an exception before the response: the server answers 500
            self.lines.add(
                (
                    time.time(),
                    scope.get("client"),
                    scope["method"],
                    scope.get("root_path", "") + scope["path"],
                    scope.get("query_string", b""),
                    status or 500,
                    time.perf_counter() - began,
                )
            )
