"""Issue 11 (4, 5, 6, 8): bounces from less common systems, header blocks the standard parser
loses, raw 8-bit headers and file names, and the mail's own date.  Messages are built here byte by
byte; real bounces come from flufl.bounce's test set and the shared corpus."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.extract import Extraction, ExtractLimits, extract
from tests.ingest.bounce_samples import NOT_BOUNCES, flufl_samples

_ROOT = Path(__file__).resolve().parents[2]
CORPUS = next((p for p in (_ROOT.parent / "shared" / "corpus", _ROOT.parent.parent / "shared" / "corpus")
               if p.is_dir()), _ROOT.parent / "shared" / "corpus")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")  # per test: cheap, and the tests can spread over xdist workers


def read(raw: bytes, blobs: FileBlobStore, name: str = "m.eml") -> Extraction:
    return extract(raw, filename=name, content_type="message/rfc822", blobs=blobs, limits=ExtractLimits())


# --- 5. header blocks ------------------------------------------------------------------------------


def test_header_wrapped_without_white_space_keeps_every_header(blobs: FileBlobStore) -> None:
    raw = (b"Received: from mx.example.net\nSubject: Complaint about my bill for March and the extra\n"
           b"charges on it\nFrom: Ann Lee <ann@example.com>\nDate: Tue, 2 Jan 2024 10:00:00 +0100\n"
           b"Message-ID: <w1@example.com>\n\nHello, body here.\n")
    result = read(raw, blobs)
    assert result.email is not None
    assert result.email.from_addr == "ann@example.com" and result.email.from_name == "Ann Lee"
    assert result.email.subject == "Complaint about my bill for March and the extra charges on it"
    assert result.email.message_id == "w1@example.com" and result.email.date is not None
    assert result.parts[0].text.strip() == "Hello, body here."
    assert any("wrapped without leading white space" in w for w in result.warnings)


def test_junk_line_before_the_headers_is_skipped(blobs: FileBlobStore) -> None:
    raw = b">From ann@example.com Mon Jan  1 00:00:00 2024\nFrom: ann@example.com\nSubject: hi there\n\nBody\n"
    result = read(raw, blobs)
    assert result.email is not None
    assert (result.email.from_addr, result.email.subject) == ("ann@example.com", "hi there")
    assert result.parts[0].text.strip() == "Body"


def test_body_without_blank_line_stays_body(blobs: FileBlobStore) -> None:
    raw = b"From: ann@example.com\nSubject: hi\nHello, no blank line was written\nSecond line\n"
    result = read(raw, blobs)
    assert result.email is not None and result.email.subject == "hi"
    assert "Hello, no blank line" in result.parts[0].text


def test_missing_subject_is_empty_and_reply_to_stands_in_for_an_unusable_from(blobs: FileBlobStore) -> None:
    raw = b"From: undisclosed-recipients:;\nReply-To: Bo <bo@example.org>\nTo: cases@example.com\n\nText\n"
    result = read(raw, blobs, name="scan_0042.eml")
    assert result.email is not None
    assert result.email.subject == ""
    assert (result.email.from_addr, result.email.sender_field) == ("bo@example.org", "reply-to")


# --- 6. raw 8-bit headers and file names -----------------------------------------------------------


def _attachment(name: bytes, disposition_name: bytes | None = None) -> bytes:
    disposition = disposition_name if disposition_name is not None else b'filename="' + name + b'"'
    return (b"From: a@example.com\nSubject: x\nContent-Type: multipart/mixed; boundary=B\n\n"
            b"--B\nContent-Type: text/plain\n\nhi\n--B\nContent-Type: text/plain; name=\"" + name + b"\"\n"
            b"Content-Disposition: attachment; " + disposition + b"\n\nhello\n--B--\n")


@pytest.mark.parametrize(("text", "codec"), [
    ("請求書について", "cp932"), ("①番の請求書", "cp932"), ("关于发票的问题", "gb18030"),
    ("Réclamation été", "cp1252"), ("Счёт за май", "cp1251"),
])
def test_raw_8bit_subject_and_sender_name_are_decoded(text: str, codec: str, blobs: FileBlobStore) -> None:
    raw = b"From: a@example.com\nSubject: " + text.encode(codec) + b"\n\n" + "本文".encode() + b"\n"
    result = read(raw, blobs)
    assert result.email is not None and result.email.subject == text


def test_raw_shift_jis_body_without_charset_reads_like_its_headers(blobs: FileBlobStore) -> None:
    raw = "From: 山田 <a@example.com>\nSubject: 見積書の件\n\n本文です\n".encode("cp932")
    result = read(raw, blobs)
    assert result.email is not None and result.email.from_name == "山田"
    assert result.parts[0].text.strip() == "本文です"


@pytest.mark.parametrize(("name", "codec"), [
    ("发票.txt", "gb18030"), ("見積書.txt", "cp932"), ("Übersicht.txt", "cp1252"),
])
def test_raw_8bit_attachment_name(name: str, codec: str, blobs: FileBlobStore) -> None:
    result = read(_attachment(name.encode(codec)), blobs)
    assert result.parts[1].filename == name


def test_rfc2231_shift_jis_name_keeps_cp932_characters(blobs: FileBlobStore) -> None:
    encoded = "".join(f"%{b:02X}" for b in "①請求.txt".encode("cp932"))
    raw = _attachment(b"x.txt", b"filename*=shift_jis''" + encoded.encode())
    assert read(raw, blobs).parts[1].filename == "①請求.txt"


def test_encoded_word_shift_jis_subject_keeps_cp932_characters(blobs: FileBlobStore) -> None:
    word = base64.b64encode("①請求".encode("cp932"))
    result = read(b"From: a@example.com\nSubject: =?shift_jis?B?" + word + b"?=\n\nbody\n", blobs)
    assert result.email is not None and result.email.subject == "①請求"


# --- 4. bounces --------------------------------------------------------------------------------------

BOUNCE_SHAPES = {
    "qmail failure notice from a null sender": (
        b"Return-Path: <>\nFrom: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\n"
        b"Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver your "
        b"message to the following addresses.\n<x@example.org>:\n550 5.1.1 user unknown\n"),
    "delivery-status part in multipart/mixed": (
        b"From: postmaster@example.net\nSubject: Delivery Status\nContent-Type: multipart/mixed; boundary=Q\n\n"
        b"--Q\nContent-Type: text/plain\n\nSee below.\n--Q\nContent-Type: message/delivery-status\n\n"
        b"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; x@example.org\nAction: failed\n"
        b"Status: 5.1.1\n--Q--\n"),
    "sendmail warning": (
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@example.net>\nSubject: Warning: could not send message "
        b"for past 4 hours\n\n    **********************************************\n    **      THIS IS A WARNING "
        b"MESSAGE ONLY      **\n    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"),
    "mailing-list server rejection": (
        b"From: list-bounces@lists.example.org\nSubject: Message rejected\nAuto-Submitted: auto-generated\n\n"
        b"Your message was rejected: you are not a member of the list.\n"),
    "SMS gateway bounce": (
        b"From: sms-gateway@gw.example.net\nSubject: failed delivery\n\n"
        b"Your text message could not be delivered to +447700900123: invalid mobile number.\n"),
    "German bounce with a null From": (
        b"From: Mailsystem <>\nSubject: Unzustellbar: Ihre Nachricht\n\n"
        b"Die Nachricht konnte nicht zugestellt werden.\n"),
    "bounce forwarded by a cloud mail service": (
        b"From: Ann Lee <ann@example.com>\nSubject: Fwd: Undeliverable: your claim\n\n"
        b"---------- Forwarded message ---------\nDelivery has failed to these recipients or groups:\n"
        b"claims@example.org\nRemote host said: 550 5.1.1 recipient rejected\n\nOriginal message headers:\n"
        b"From: Claims <claims@example.org>\nTo: ann@example.com\nSubject: your claim\n"
        b"Message-ID: <out-77@casework.example>\n"),
    "Chinese bounce": (
        "From: MAILER-DAEMON@mail.example.cn\nSubject: 邮件传输失败\uff01\n\n"
        "很抱歉\uff0c您的邮件无法投递。\n".encode("gb18030")),
}
GENUINE = {
    "parcel that could not be delivered": (
        b"From: Ann Lee <ann@example.com>\nSubject: Returned to sender - parcel could not be delivered\n\n"
        b"Dear team, my parcel could not be delivered and was returned to sender. Ref CASE-2024-000123.\n"),
    "complaint about mail delivery": (
        b"From: Bob <bob@example.org>\nSubject: Delivery failure of my replacement card\n\n"
        b"The card you sent was not delivered to my address. Please send another.\n"),
    "courier's no-reply notice": (
        b"From: Parcels <noreply@courier.example>\nSubject: Delivery failed - we missed you\n\n"
        b"We tried to deliver your parcel 1234 today but nobody was home. Book a new slot online.\n"),
    "forwarded conversation": (
        b"From: Cy <cy@example.net>\nSubject: Fwd: meeting\n\n---------- Original message ---------\n"
        b"From: Di <di@example.net>\nDate: Mon, 1 Jan 2024\nSubject: meeting\nTo: cy@example.net\n\nSee you.\n"),
}


@pytest.mark.parametrize("shape", sorted(BOUNCE_SHAPES))
def test_bounces_of_less_common_shapes_are_recognised(shape: str, blobs: FileBlobStore) -> None:
    result = read(BOUNCE_SHAPES[shape], blobs)
    assert result.email is not None and result.email.is_bounce, shape


def test_forwarded_bounce_names_the_original(blobs: FileBlobStore) -> None:
    result = read(BOUNCE_SHAPES["bounce forwarded by a cloud mail service"], blobs)
    assert result.email is not None and result.email.original_message_id == "out-77@casework.example"


@pytest.mark.parametrize("shape", sorted(GENUINE))
def test_people_writing_about_failed_deliveries_are_not_bounces(shape: str, blobs: FileBlobStore) -> None:
    result = read(GENUINE[shape], blobs)
    assert result.email is not None and not result.email.is_bounce and not result.email.is_auto_reply


def test_flufl_bounce_set_is_recognised(blobs: FileBlobStore) -> None:
    data = flufl_samples()
    if data is None:
        pytest.skip("flufl.bounce sdist could not be fetched (pip download)")
    files = sorted(data.glob("*.txt"))
    bounces = [f for f in files if f.name not in NOT_BOUNCES]
    missed = [f.name for f in bounces if not read(f.read_bytes(), blobs, f.name).email.is_bounce]  # type: ignore[union-attr]
    assert len(bounces) >= 110
    assert (len(bounces) - len(missed)) / len(bounces) >= 0.99, missed
    for name in NOT_BOUNCES:
        assert not read((data / name).read_bytes(), blobs, name).email.is_bounce  # type: ignore[union-attr]


@pytest.mark.skipif(not (CORPUS / "email").is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_people_and_lists_are_not_bounces(blobs: FileBlobStore) -> None:
    genuine = [p for p in sorted((CORPUS / "email").glob("*.eml"))
               if "bounce" not in p.name and "autoreply" not in p.name and "arf" not in p.name
               and "mdn" not in p.name and "delay_warning" not in p.name and "malformed_2" not in p.name]
    assert len(genuine) >= 30
    wrongly = [p.name for p in genuine if (e := read(p.read_bytes(), blobs, p.name).email) is not None and e.is_bounce]
    assert wrongly == []
