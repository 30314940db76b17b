"""Issue 16, point 5: unsigned and unauthenticated bodies are refused from their headers, before
the server takes them. A real uvicorn server on loopback serves the app as `casework serve` does;
a raw socket client streams a large body from a second thread while the first waits for the
answer. "Refused before the body was taken" is then a fact about order, not time: a server that
reads the whole body first cannot answer before the client has sent all of it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from api.app import MAX_UPLOAD_BYTES, create_app
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import users
from connectors.fax import sign
from tests.connectors.conftest import free_port, wait_until

FAX_SECRET, TW_TOKEN = "fax-secret", "twilio-token"
CHUNK = 256 * 1024
TOTAL = 96 * 1024 * 1024  # well past what the kernel's socket buffers hold (a few MB)


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[tuple[Runtime, int]]:
    settings = Settings.model_validate({
        "data_dir": tmp_path / "data", "db": {"url": db_url},
        "connectors": {"fax": {"enabled": True, "secret": FAX_SECRET, "max_bytes": 1_000_000},
                       "twilio": {"enabled": True, "account_sid": "AC" + "1" * 32, "auth_token": TW_TOKEN}}})
    rt = open_runtime(settings)
    with rt.sessions() as s, s.begin():
        users.add_user(s, name="robot", role="integration")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "uvicorn to start")
    yield rt, port
    server.should_exit = True
    thread.join(10)
    rt.close()


@dataclass
class Answer:
    status: int
    head: str
    body: bytes
    sent_when_answered: int  # body bytes the client had handed to its socket when the answer came


def stream_request(port: int, method: str, path: str, headers: dict[str, str], *, total: int = TOTAL,
                   chunked: bool = True, first: bytes = b"", filler: bytes = b"x" * CHUNK) -> Answer:
    """Send ``first`` and then ``filler`` (repeated, cut to fit) up to ``total`` body bytes from a
    thread; the answer, and how much of the body had been sent when it came."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(120)  # a guard against a hang, not a measurement
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = 0
    stop = threading.Event()

    def send_body() -> None:
        nonlocal sent
        try:
            while sent < total and not stop.is_set():
                data = first[sent:sent + CHUNK] if sent < len(first) else filler[:total - sent]
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
                sent += len(data)
            if chunked and not stop.is_set():
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: it does not want the rest

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        sent_when_answered = sent
        head_text, _, body = received.partition(b"\r\n\r\n")
        length = next((int(line.split(":", 1)[1]) for line in head_text.decode().split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                break
            body += data
    finally:
        stop.set()
        sock.close()
        sender.join(30)
    assert head_text, "no answer at all"
    return Answer(int(head_text.split(b" ")[1]), head_text.decode(), body, sent_when_answered)


def refused_early(answer: Answer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.sent_when_answered < TOTAL, (
        f"answered {answer.status} only after the client sent all {TOTAL} bytes: the server took the body first")
    assert "connection: close" in answer.head.lower()


def test_an_unsigned_chunked_fax_is_refused_before_the_body_is_taken(served: tuple[Runtime, int]) -> None:
    _, port = served
    refused_early(stream_request(port, "POST", "/webhooks/fax", {"Content-Type": "multipart/form-data; boundary=b"}),
                  403)


def test_a_signed_fax_over_the_limit_is_not_read_past_the_limit(served: tuple[Runtime, int]) -> None:
    _, port = served
    wrong = sign(FAX_SECRET, b"something else")
    answer = stream_request(port, "POST", "/webhooks/fax", {"Content-Type": "application/octet-stream",
                                                             "X-Casework-Signature": wrong})
    refused_early(answer, 413)
    declared = stream_request(port, "POST", "/webhooks/fax", {"Content-Type": "application/octet-stream",
                                                               "X-Casework-Signature": wrong}, chunked=False)
    refused_early(declared, 413)


def test_an_unsigned_twilio_webhook_is_refused_before_the_body_is_taken(served: tuple[Runtime, int]) -> None:
    _, port = served
    field = b"a=" + b"x" * (CHUNK - 3) + b"&"  # many fields, each under the form parser's 1 MB field limit
    answer = stream_request(port, "POST", "/webhooks/twilio/sms",
                            {"Content-Type": "application/x-www-form-urlencoded"}, filler=field)
    refused_early(answer, 403)


def test_an_upload_without_a_valid_token_is_refused_before_the_body_is_taken(served: tuple[Runtime, int]) -> None:
    _, port = served
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    first = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    answer = stream_request(port, "POST", "/api/v1/items", multipart, first=first)
    refused_early(answer, 401)
    assert "bearer token" in json.loads(answer.body)["detail"]
    forged = stream_request(port, "POST", "/api/v1/items", {**multipart, "Authorization": "Bearer cw_forged"},
                            first=first)
    refused_early(forged, 401)
    json_route = stream_request(port, "POST", "/api/v1/triage/x/resolve", {"Content-Type": "application/json"},
                                first=b'{"action": "')
    refused_early(json_route, 401)


def test_an_upload_over_the_limit_is_refused_from_its_length_or_at_the_limit(served: tuple[Runtime, int]) -> None:
    rt, port = served
    with rt.sessions() as s, s.begin():
        token = users.create_token(s, name="robot")
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Authorization": f"Bearer {token}"}
    first = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    assert TOTAL > MAX_UPLOAD_BYTES + 1024 * 1024
    declared = stream_request(port, "POST", "/api/v1/items", headers, chunked=False, first=first)
    refused_early(declared, 413)
    chunked = stream_request(port, "POST", "/api/v1/items", headers, first=first)
    refused_early(chunked, 413)
    assert "over" in json.loads(chunked.body)["detail"]


def test_a_small_upload_with_a_token_still_goes_through(served: tuple[Runtime, int]) -> None:
    rt, port = served
    with rt.sessions() as s, s.begin():
        token = users.create_token(s, name="robot")
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello there\r\n'
            b"--b--\r\n")
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Authorization": f"Bearer {token}"}
    for chunked in (False, True):
        answer = stream_request(port, "POST", "/api/v1/items", headers, total=len(body), chunked=chunked, first=body)
        assert answer.status == 202, answer
        assert json.loads(answer.body)["item_id"]
