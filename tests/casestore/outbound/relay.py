"""A real SMTP server (aiosmtpd, the product's own receiver library) standing in for the relay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.connectors.conftest import free_port


@dataclass
class Relay:
    host: str
    port: int
    received: list[Envelope] = field(default_factory=list)
    rcpt_answer: str = "250 OK"
    data_answer: str = "250 2.0.0 Ok: queued as Q{n}"
    on_rcpt: Callable[[], None] | None = None  # runs in the server's thread before answering RCPT
    on_data: Callable[[], None] | None = None  # runs after the whole message came, before the answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            raws = [e.original_content or b"" for e in self.received]
        return [message_from_bytes(bytes(r), policy=policy.default) for r in raws]

    def count(self) -> int:
        with self.lock:
            return len(self.received)


class _Handler:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.relay.on_rcpt is not None:
            self.relay.on_rcpt()
        if self.relay.rcpt_answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.relay.rcpt_answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> Any:
        with self.relay.lock:
            self.relay.received.append(envelope)
            n = len(self.relay.received)
        if self.relay.on_data is not None:
            self.relay.on_data()
        return self.relay.data_answer.format(n=n)


@contextmanager
def smtp_relay() -> Iterator[Relay]:
    relay = Relay("127.0.0.1", free_port())
    controller = Controller(_Handler(relay), hostname=relay.host, port=relay.port)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()
