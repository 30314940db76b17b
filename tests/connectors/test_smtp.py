"""The SMTP receiver with smtplib as the client: accepted, refused recipients, oversize mail, re-sends."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.metrics import Registry
from connectors.settings import SmtpSettings
from connectors.smtp import SmtpReceiver
from connectors.state import StateStore
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import free_port, raw_items

MAIL = (b"From: Jane <jane@example.org>\r\nTo: cases@cases.example\r\nSubject: CM-2025-000001 again\r\n"
        b"Message-ID: <smtp-1@example.org>\r\n\r\nHello, still waiting.\r\n")


@pytest.fixture
def receiver(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> Iterator[SmtpReceiver]:
    settings = SmtpSettings(enabled=True, port=free_port(), domains=["cases.example"],
                            recipients=["fax@other.example"], max_message_bytes=20_000, team="complaints")
    r = SmtpReceiver(settings, bus=bus, blobs=blobs, state=StateStore(tmp_path / "smtp.db"), registry=registry)
    r.start()
    yield r
    r.close()


def client(r: SmtpReceiver) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", r.settings.port, timeout=10)


def test_mail_for_a_configured_domain_is_published_once(receiver: SmtpReceiver, bus: SqliteBus,
                                                        blobs: FileBlobStore) -> None:
    with client(receiver) as s:
        assert s.sendmail("jane@example.org", ["cases@cases.example", "fax@other.example"], MAIL) == {}
        s.sendmail("jane@example.org", ["cases@cases.example"], MAIL)  # a re-send
    [item] = raw_items(bus)
    assert item.channel == "email" and item.idempotency_key == "email:msgid:smtp-1@example.org"
    assert item.metadata["envelope_to"] == "cases@cases.example,fax@other.example"
    assert item.metadata["team"] == "complaints"
    assert blobs.read(item.blob_sha256) == MAIL
    assert receiver.emitter.stats.received == 1 and receiver.emitter.stats.duplicates == 1


def test_unknown_recipient_gets_550_and_nothing_is_stored(receiver: SmtpReceiver, bus: SqliteBus) -> None:
    with client(receiver) as s:
        s.ehlo()
        s.mail("jane@example.org")
        code, msg = s.rcpt("someone@elsewhere.example")
        assert code == 550 and b"5.1.1" in msg
        s.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("jane@example.org", ["nobody@evil.example"], MAIL)
    assert raw_items(bus) == []


def test_oversize_mail_gets_552(receiver: SmtpReceiver, bus: SqliteBus) -> None:
    big = MAIL + (b"x" * 76 + b"\r\n") * 400
    with client(receiver) as s:
        s.ehlo()
        assert s.has_extn("size") and int(s.esmtp_features["size"]) == 20_000
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:  # smtplib announces SIZE=: refused at MAIL
            s.sendmail("jane@example.org", ["cases@cases.example"], big)
        assert declared.value.smtp_code == 552
    with client(receiver) as s:  # a client that does not declare the size: refused at the end of DATA
        s.helo()
        s.mail("jane@example.org")
        s.rcpt("cases@cases.example")
        code, _ = s.data(big)
        assert code == 552
    assert raw_items(bus) == []
    assert receiver.emitter.stats.failed == 2
