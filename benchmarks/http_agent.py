"""A lean HTTP/1.1 keep-alive client for the queue benchmarks' simulated agents.

The agents stand for people at browsers on other machines; their client's CPU is not the
product's.  On this 2-core machine it is shared with the server and the database, so a heavy client
(httpx: ~0.3-0.5 ms of CPU a call, plus GIL hand-offs between 16-25 client threads in a process)
takes CPU from the server it measures and adds its own queueing to every latency.  This client sends
pre-encoded request bytes on one blocking socket (the GIL is released while it waits) and reads
the status line, the headers it needs (``content-length``, ``connection``) and the body: tens of
microseconds a call.  It speaks only what `casework serve` answers here: a ``content-length``
body or none, no chunked encoding (refused with an error, not misread), keep-alive unless the
server says ``close``, in which case it reconnects for the next call.  A connection that sat idle
for a second or more is first checked (one non-blocking peek): the server closes idle keep-alive
connections (uvicorn after 5 s), and an agent that pauses longer than that reconnects, as a browser
would, instead of failing its next call on the closed socket.
"""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any
from urllib.parse import urlsplit

IDLE_CHECK_S = 1.0


class HTTPStatusError(RuntimeError):
    """A response whose status is not 2xx."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class LeanClient:
    """One keep-alive connection to ``base`` (``http://host:port``) with fixed headers."""

    def __init__(self, base: str, headers: dict[str, str], timeout: float = 60) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{self.host}:{self.port}", **headers}.items())
        self.sock: socket.socket | None = None
        self.buf = b""
        self.used_at = 0.0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""
        return sock

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request and read its whole response: (status, body)."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self.fixed}"
        if payload:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        elif method in ("POST", "PUT", "PATCH"):
            head += "Content-Length: 0\r\n"
        data = (head + "\r\n").encode("latin-1") + payload
        if self.sock is not None and time.monotonic() - self.used_at >= IDLE_CHECK_S and self._dropped(self.sock):
            self.close()
        sock = self.sock or self._connect()
        try:
            sock.sendall(data)
            return self._response(sock)
        except (ConnectionError, TimeoutError):
            self.close()
            raise
        finally:
            self.used_at = time.monotonic()

    @staticmethod
    def _dropped(sock: socket.socket) -> bool:
        """Whether an idle connection is done for: readable with no request outstanding means the
        server closed it (or sent what nobody asked for)."""
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def _read_more(self, sock: socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _response(self, sock: socket.socket) -> tuple[int, bytes]:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._read_more(sock)
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                raise ValueError(f"LeanClient does not read {value.strip()} bodies")
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        while len(self.buf) < length:
            self._read_more(sock)
        body, self.buf = self.buf[:length], self.buf[length:]
        if close:
            self.close()
        return status, body

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON of a 2xx response; ``HTTPStatusError`` otherwise."""
        status, raw = self.request(method, path, body)
        if not 200 <= status < 300:
            raise HTTPStatusError(status, raw)
        return json.loads(raw) if raw else None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
