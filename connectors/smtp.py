"""SMTP receiver (aiosmtpd): mail for the configured domains or addresses becomes ``email`` items.

Refusals use the standard codes: an address not accepted here gets ``550 5.1.1`` at RCPT, a
message over ``max_message_bytes`` gets ``552`` (announced in EHLO as ``SIZE``; a ``MAIL FROM
... SIZE=`` over it is refused before any data, a longer DATA is refused at its end). A message
that cannot be stored or published gets ``451 4.3.0`` so the sending server retries later:
nothing accepted with ``250`` is lost. The idempotency key is the Message-ID, so a re-sent message
is the same item; it is not published twice (state in ``DATA_DIR/connectors/smtp.db``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from connectors.emit import Emitter
from connectors.metrics import Registry
from connectors.settings import SmtpSettings
from connectors.state import StateStore
from ingest.blobs import BlobStore
from ingest.bus.port import Bus

log = logging.getLogger(__name__)


class CaseworkHandler:
    def __init__(self, settings: SmtpSettings, emitter: Emitter) -> None:
        self.settings = settings
        self.emitter = emitter
        self.domains = {d.lower().lstrip("@") for d in settings.domains}
        self.recipients = {r.lower() for r in settings.recipients}

    def accepts(self, address: str) -> bool:
        addr = address.strip("<>").lower()
        if addr in self.recipients:
            return True
        return "@" in addr and addr.rsplit("@", 1)[1] in self.domains

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.accepts(address):
            self.emitter.stats.record_failed(f"refused recipient {address}")
            log.info("smtp: refused RCPT %s from %s (not a recipient here)", address, session.peer)
            return "550 5.1.1 Recipient address rejected: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if len(data) > self.settings.max_message_bytes:
            return f"552 5.3.4 Message size exceeds fixed limit of {self.settings.max_message_bytes} bytes"
        meta = {"envelope_from": str(envelope.mail_from or ""), "envelope_to": ",".join(envelope.rcpt_tos),
                "smtp_peer": str(session.peer[0]) if session.peer else ""}
        if self.settings.team:
            meta["team"] = self.settings.team
        loop = asyncio.get_running_loop()
        try:
            emitted = await loop.run_in_executor(None, lambda: self.emitter.emit(
                data, channel="email", filename=None, source=f"smtp:{meta['smtp_peer']}",
                content_type="message/rfc822", metadata=meta))
        except Exception as exc:
            log.error("smtp: could not store a message from %s (%s: %s); told the sender to retry",
                      envelope.mail_from, type(exc).__name__, exc)
            return "451 4.3.0 Temporary failure storing the message; try again later"
        return f"250 2.0.0 OK queued as {emitted.item.item_id}"


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP, counting the refusals it makes on its own (552 for SIZE, bad commands)."""

    stats: Any = None

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("552") and self.stats is not None:
            self.stats.record_failed("message over max_message_bytes")
            log.info("smtp: refused oversize mail from %s", self.session.peer if self.session else "?")
        await super().push(status)


class _Controller(Controller):
    stats: Any = None

    def factory(self) -> SMTP:
        server = _CountingSMTP(self.handler, **self.SMTP_kwargs)
        server.stats = self.stats
        return server


class SmtpReceiver:
    """Runs the aiosmtpd server in its own thread (``start``/``stop``) or until ``stop`` is set (``run``)."""

    kind = "smtp"

    def __init__(self, settings: SmtpSettings, *, bus: Bus, blobs: BlobStore, state: StateStore | None = None,
                 stop: threading.Event | None = None, registry: Registry | None = None) -> None:
        self.settings = settings
        self.stop_event = stop or threading.Event()
        self.emitter = Emitter("smtp", bus=bus, blobs=blobs, state=state, registry=registry, kind=self.kind)
        self.handler = CaseworkHandler(settings, self.emitter)
        kwargs: dict[str, Any] = {}
        if settings.hostname:
            kwargs["server_hostname"] = settings.hostname
        self.controller = _Controller(self.handler, hostname=settings.host, port=settings.port,
                                      data_size_limit=settings.max_message_bytes, enable_SMTPUTF8=True, **kwargs)
        self.controller.stats = self.emitter.stats

    def start(self) -> None:
        self.controller.start()
        self.emitter.stats.set_state("running")
        log.info("smtp: listening on %s:%d for %s", self.settings.host, self.settings.port,
                 ", ".join(self.settings.domains + self.settings.recipients) or "nobody (no domains configured)")

    def close(self) -> None:
        self.controller.stop()
        self.emitter.stats.set_state("stopped")

    def run(self) -> None:
        self.start()
        try:
            self.stop_event.wait()
        finally:
            self.close()
