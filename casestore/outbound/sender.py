"""The sender loop: delivers what the outbox holds, with retries and backoff.

One round (``run_once``): take back the claims of senders that stopped (``outbox.reconcile``),
claim a batch of due messages, hand each to its transport, and record the outcome.  Search has
the folder entries from their queueing (a search outbox row written with each message); sending
changes nothing search holds.  ``run`` repeats rounds until told to stop; a round that
fails (the database is down) is repeated after a growing pause.

What is promised, and how (the claim and ``committing`` are explained in ``outbox``):

- **Nothing is lost.** A message is in the outbox from the commit that asked for it.  A sender
  that stops at any point leaves its rows ``sending`` or ``committing``; when their lease runs
  out (``CASEWORK_OUTBOUND__CLAIM_LEASE_S``), ``sending`` rows are sent again and ``committing``
  rows become ``unconfirmed``, shown in the case and in ``casework outbox list``: never dropped.
- **Nothing is sent twice by us.** A message is re-sent by itself only when the provider cannot
  have it: the final step (the SMTP end-of-data dot, the Twilio POST) is taken only after
  ``committing`` was committed by the sender that still holds the claim, and a row that reached
  ``committing`` is never re-sent without a person (``casework outbox retry``).  So a kill
  between the relay's "250 OK" and our record gives exactly one delivery, and the message waits
  as ``unconfirmed`` for a person to confirm (the relay's log has its Message-ID), or for
  Twilio's status callback, which carries our id.
- **The honest limit.** Between ``committing`` and the relay's answer lies one network round
  trip.  A sender killed inside it leaves a message that may or may not have gone; that one
  case needs a person (at most once rather than at least once).  Past the relay, SMTP itself
  may duplicate (RFC 1047); the fixed Message-ID lets a mailbox drop such a copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import translate_errors
from casestore.errors import StoreUnavailable
from casestore.models import utcnow
from casestore.outbound import outbox
from casestore.outbound.letters import Letter, render_letter
from casestore.outbound.mime import build_email
from casestore.outbound.outbox import Claimed
from casestore.outbound.transports import (
    ClaimLost,
    Delivery,
    SendRejected,
    SendRetry,
    SendUncertain,
    Transport,
)
from casestore.outbound.wakeup import Wakeup, listen
from casestore.rounds import exponential_backoff

log = logging.getLogger(__name__)


class StoredBlob(Protocol):
    @property
    def sha256(self) -> str: ...


class BlobStorage(Protocol):
    """What the sender needs of the blob store (``ingest.blobs.FileBlobStore`` is one)."""

    def put(self, data: bytes) -> StoredBlob: ...

    def open(self, sha256: str) -> BinaryIO: ...


@dataclass(frozen=True)
class SenderConfig:
    batch_size: int = 20
    claim_lease_s: float = 300.0  # longer than one message's longest send (SMTP timeout x steps)
    max_attempts: int = 8
    backoff_initial_s: float = 30.0
    backoff_max_s: float = 3600.0
    poll_s: float = 1.0
    letter_font: Path | None = None


@dataclass
class RoundReport:
    claimed: int = 0
    sent: int = 0
    letters: int = 0
    retried: int = 0
    failed: int = 0
    unconfirmed: int = 0
    lost: int = 0
    requeued_stale: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int, config: SenderConfig) -> float:
    return exponential_backoff(attempts, config.backoff_initial_s, config.backoff_max_s)


class Sender:
    def __init__(self, *, sessions: sessionmaker[Session], blobs: BlobStorage, transports: Mapping[str, Transport],
                 config: SenderConfig,
                 clock: Callable[[], datetime] = utcnow, listen_engine: Engine | None = None) -> None:
        self.sessions = sessions
        self.wakeup = Wakeup()  # set when a message is queued (casestore.outbound.wakeup)
        self.listen_engine = listen_engine  # PostgreSQL: LISTEN for other processes' messages
        self.blobs = blobs
        self.transports = dict(transports)
        self.config = config
        self.clock = clock
        self.rounds = 0
        self.last_error: str | None = None

    # -- one round -----------------------------------------------------------------------------

    def run_once(self) -> RoundReport:
        report = RoundReport()
        now = self.clock()
        with translate_errors(), self.sessions() as session, session.begin():
            report.requeued_stale, report.unconfirmed = outbox.reconcile(session, now=now)
        with translate_errors(), self.sessions() as session, session.begin():
            claimed = outbox.claim_due(session, now=now, limit=self.config.batch_size,
                                       lease_s=self.config.claim_lease_s)
        report.claimed = len(claimed)
        try:
            for msg in claimed:
                self._deliver(msg, report)
        finally:
            for transport in self.transports.values():
                transport.close()
        self.rounds += 1
        return report

    def _write(self, what: str, fn: Callable[[Session], object], *, patience_s: float | None = None) -> object:
        """Run ``fn`` in its own transaction, retrying a store outage for up to ``patience_s``."""
        deadline = time.monotonic() + (self.config.claim_lease_s if patience_s is None else patience_s)
        pause = 0.2
        while True:
            try:
                with translate_errors(), self.sessions() as session, session.begin():
                    return fn(session)
            except StoreUnavailable as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("outbox: cannot record %s yet (%s); retrying in %.1fs", what, exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _deliver(self, msg: Claimed, report: RoundReport) -> None:
        if msg.channel == "letter":
            self._letter(msg, report)
            return
        transport = self.transports.get(msg.channel)
        passed = False

        def point_of_no_return() -> bool:
            nonlocal passed
            try:
                passed = bool(self._write("committing", lambda s: outbox.mark_committing(
                    s, outbound_id=msg.id, token=msg.token), patience_s=5.0))
            except Exception as exc:  # not sure it was written: do not take the step (at most once)
                log.error("outbox: could not mark %s committing (%s); not sending it now", msg.id, exc)
                passed = False
            return passed

        try:
            if transport is None:
                raise SendRetry(f"no {msg.channel} transport is configured in this sender")
            data = build_email(msg, read_blob=self._read_blob) if msg.channel == "email" else None
            delivery = transport.send(msg, data, point_of_no_return=point_of_no_return)
        except ClaimLost as exc:
            log.warning("outbox: %s", exc)
            report.lost += 1
            return
        except SendRetry as exc:
            self._retry(msg, str(exc), report)
            return
        except SendRejected as exc:
            error, flag = str(exc), exc.flag
            self._write("failure", lambda s: outbox.record_failed(s, outbound_id=msg.id, token=msg.token,
                                                                  error=error, flag=flag))
            report.failed += 1
            return
        except SendUncertain as exc:
            self._unconfirmed(msg, str(exc), report)
            return
        except Exception as exc:  # a bug or an unreadable attachment: never guess past the point of no return
            log.exception("outbox: sending %s failed unexpectedly", msg.id)
            if passed:
                self._unconfirmed(msg, f"{type(exc).__name__}: {exc}", report)
            else:
                self._retry(msg, f"{type(exc).__name__}: {exc}", report)
            return
        self._sent(msg, delivery, report)

    def _sent(self, msg: Claimed, delivery: Delivery, report: RoundReport) -> None:
        blob_sha, size = None, 0
        if delivery.raw is not None:
            try:
                blob_sha, size = self.blobs.put(delivery.raw).sha256, len(delivery.raw)
            except OSError as exc:  # sent all the same: the record matters more than the copy
                log.error("outbox: %s was sent but its copy could not be stored (%s)", msg.id, exc)
        self._write("sent", lambda s: outbox.record_sent(
            s, outbound_id=msg.id, token=msg.token, provider_id=delivery.provider_id, now=self.clock(),
            blob_sha256=blob_sha, content_type="message/rfc822", size=size,
            filename=f"{msg.case_ref}-{msg.id[:8]}.eml" if blob_sha else None, segments=delivery.segments))
        report.sent += 1

    def _unconfirmed(self, msg: Claimed, error: str, report: RoundReport) -> None:
        self._write("uncertain send", lambda s: outbox.record_unconfirmed(s, outbound_id=msg.id, token=msg.token,
                                                                          error=error))
        report.unconfirmed += 1

    def _retry(self, msg: Claimed, error: str, report: RoundReport) -> None:
        delay = backoff(msg.attempts, self.config)
        state = self._write("retry", lambda s: outbox.record_retry(
            s, outbound_id=msg.id, token=msg.token, error=error, now=self.clock(), delay_s=delay,
            max_attempts=self.config.max_attempts))
        if state == "failed":
            report.failed += 1
        else:
            report.retried += 1
            log.info("outbox: %s not sent (%s); next try in %.0fs", msg.id, error, delay)

    def _letter(self, msg: Claimed, report: RoundReport) -> None:
        try:
            pdf = render_letter(Letter(address_lines=tuple((msg.postal_address or msg.recipient).splitlines()),
                                       body=msg.body, case_ref=msg.case_ref, date=msg.created_at,
                                       return_address=msg.from_address, title=msg.subject),
                                font=self.config.letter_font)
            stored = self.blobs.put(pdf)
        except Exception as exc:
            log.exception("outbox: letter %s could not be made", msg.id)
            self._retry(msg, f"the letter's PDF could not be made: {type(exc).__name__}: {exc}", report)
            return
        self._write("letter", lambda s: outbox.record_letter(
            s, outbound_id=msg.id, token=msg.token, blob_sha256=stored.sha256, size=len(pdf),
            filename=f"letter-{msg.case_ref}-{msg.id[:8]}.pdf"))
        report.letters += 1

    def _read_blob(self, sha256: str) -> bytes:
        with self.blobs.open(sha256) as fh:
            return fh.read()

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set; failed rounds back off.  An idle sender waits up to
        ``poll_s`` for a wake-up: a message queued in this process, or on PostgreSQL in any
        process (``listen_engine``: a LISTEN thread runs alongside); see ``wakeup``."""
        pause = self.config.poll_s
        log.info("outbox sender started (batch %d, lease %.0fs)", self.config.batch_size, self.config.claim_lease_s)
        listener = None
        if self.listen_engine is not None and self.listen_engine.dialect.name == "postgresql":
            listener = threading.Thread(target=listen, args=(self.listen_engine, self.wakeup, stop),
                                        name="outbox-listen", daemon=True)
            listener.start()
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("outbox: round failed (%s); next try in %.1fs", self.last_error, pause)
                stop.wait(pause)
                pause = min(pause * 2, 60.0)
                continue
            pause = self.config.poll_s
            self.last_error = None
            if report.claimed < self.config.batch_size:
                self.wakeup.wait(self.config.poll_s, stop)
        if listener is not None:
            listener.join(5)
        log.info("outbox sender stopped")
