"""A small real HTTP server standing in for a provider (media URLs, api.twilio.com) in tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    url: str
    routes: dict[tuple[str, str], tuple[int, str, bytes]]
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0  # TCP connections accepted, whether or not they sent a request


@contextmanager
def stand_in(routes: dict[tuple[str, str], tuple[int, str, bytes]],
             basic_auth: str | None = None) -> Iterator[StandIn]:
    """Serve ``{(METHOD, path): (status, content type, body)}``; ``basic_auth`` is the required header value.

    A 3xx status sends its body as the ``Location`` header (a redirect).
    """
    state = StandIn("", routes)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            if basic_auth is not None and self.headers.get("Authorization") != basic_auth:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, ctype, payload = state.routes.get((self.command, self.path.split("?")[0]), (404, "text/plain", b""))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if 300 <= status < 400:
                self.send_header("Location", payload.decode())
                payload = b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def verify_request(self, request: object, client_address: object) -> bool:
            state.connections += 1
            return True

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
