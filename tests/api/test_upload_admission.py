"""Issue 15.12: only ``serve.upload_slots`` uploads are inside the API at once; the others wait unread
while searches go ahead (``api.upload_intake.UploadAdmission``).

A real uvicorn server on loopback serves the app as `casework serve` does, with one upload slot.
Upload A sends its headers and half its body from a raw socket and so holds the slot. A search
is answered meanwhile; upload B, complete, is not answered until A's body is finished (order, not
speed: a server that let B in would answer it while A's body is still missing). Both are then
accepted, each on the bus once.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import users
from ingest.messages import TOPIC_RAW
from tests.connectors.conftest import free_port, wait_until

BOUNDARY = "casework-test-boundary"


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[tuple[Runtime, int, dict[str, str]]]:
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "db": {"url": db_url},
                                        "serve": {"upload_slots": 1}})
    rt = open_runtime(settings)
    with rt.sessions() as s, s.begin():
        users.add_user(s, name="robot", role="integration")
        users.add_user(s, name="alice", role="agent", teams=["t1"])
        tokens = {"robot": users.create_token(s, name="robot"), "alice": users.create_token(s, name="alice")}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "uvicorn to start")
    yield rt, port, tokens
    server.should_exit = True
    thread.join(10)
    rt.close()


def _multipart(name: str, content: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"channel\"\r\n\r\napi\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_a_waiting_upload_is_not_let_in_while_searches_are(served: tuple[Runtime, int, dict[str, str]]) -> None:
    rt, port, tokens = served
    base = f"http://127.0.0.1:{port}"
    body = _multipart("a.txt", b"Letter A about a refund. " * 400)
    half = len(body) // 2
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(60)  # a guard against a hang, not a measurement
    head = ["POST /api/v1/items HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Authorization: Bearer {tokens['robot']}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}", f"Content-Length: {len(body)}"]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[:half])  # A holds the one slot

    search = httpx.get(f"{base}/api/v1/search", params={"q": "refund"}, timeout=60,
                       headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert search.status_code == 200, search.text  # a search is not held up by the upload in progress

    answers: dict[str, httpx.Response] = {}
    order: list[str] = []

    def upload_b() -> None:
        answers["b"] = httpx.post(f"{base}/api/v1/items", timeout=60,
                                  headers={"Authorization": f"Bearer {tokens['robot']}"},
                                  files={"file": ("b.txt", b"Letter B about a claim.", "text/plain")},
                                  data={"channel": "api"})
        order.append("b")

    b = threading.Thread(target=upload_b)
    b.start()
    b.join(1.5)
    assert b.is_alive() and "b" not in answers, "upload B was let in while A held the only slot"

    sock.sendall(body[half:])
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    order.append("a")
    sock.close()
    assert reply.startswith(b"HTTP/1.1 202"), reply[:200]
    b.join(60)
    assert answers["b"].status_code == 202, answers["b"].text
    assert order == ["a", "b"]

    consumer = rt.bus.consumer([TOPIC_RAW], group="check")
    keys: list[str] = []
    wait_until(lambda: bool(keys.extend(r.key for r in consumer.poll(max_records=10, timeout=0.2)))
               or len(keys) >= 2, 30, "both uploads on the bus")
    consumer.close()
    assert len(keys) == len(set(keys)) == 2


def test_an_upload_without_credentials_does_not_wait_for_a_slot(served: tuple[Runtime, int, dict[str, str]]) -> None:
    """Anonymous uploads are refused at once (401) while a real upload holds the only slot: they
    never queue ahead of, or among, the uploads that may go in."""
    _rt, port, tokens = served
    body = _multipart("a.txt", b"Letter A about a refund. " * 400)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(60)
    head = ["POST /api/v1/items HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Authorization: Bearer {tokens['robot']}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}", f"Content-Length: {len(body)}"]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[: len(body) // 2])  # holds the slot
    answers: list[int] = []

    def anonymous() -> None:
        answers.append(httpx.post(f"http://127.0.0.1:{port}/api/v1/items", timeout=60,
                                  files={"file": ("x.txt", b"spam", "text/plain")}, data={"channel": "api"}
                                  ).status_code)

    for _ in range(3):
        t = threading.Thread(target=anonymous)
        t.start()
        t.join(20)
        assert not t.is_alive(), "an anonymous upload waited for the slot the real upload holds"
    assert answers == [401, 401, 401]
    sock.sendall(body[len(body) // 2:])
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 202"), reply[:200]
