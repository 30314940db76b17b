"""Outlook formats: .msg (OLE2 with MAPI properties) and TNEF winmail.dat inside MIME mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.extract import Extraction, ExtractLimits, extract
from ingest.extract.rtf import decompress_rtf, rtf_to_text

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "email"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def read(name: str, blobs: FileBlobStore) -> Extraction:
    return extract((CORPUS / name).read_bytes(), filename=name, content_type=None, blobs=blobs,
                   limits=ExtractLimits(ocr_enabled=False))


def test_outlook_msg_headers_body_and_attachments(blobs: FileBlobStore) -> None:
    result = read("spamscope__mail_outlook_1.msg", blobs)
    assert result.email is not None
    assert result.email.subject == "Newsletter Prüfung Personalwesen / Prüfung Eröffnungsbilanz"
    assert result.email.from_addr == "nueblingv@w-vwa.de"
    assert result.email.message_id == "20170918100018.6AE0948009C@www.w-vwa.de"
    assert result.email.date is not None and result.email.date.year == 2017
    body, *attachments = result.parts
    assert body.kind == "body" and "Newsletter" in body.text
    assert [a.filename for a in attachments][:2] == ["newsletter.png", "spacer.gif"]
    assert all(a.blob_sha256 for a in attachments)


def test_tnef_rich_text_body_and_files_are_unpacked(blobs: FileBlobStore) -> None:
    result = read("mimekit__outlook2016_rich_text_tnef.eml", blobs)
    (winmail,) = [p for p in result.parts if p.filename == "winmail.dat"]
    assert "Christmas to remember" in winmail.text
    assert winmail.fields["parts"] == 4  # body and three files


def test_tnef_koi8r_body(blobs: FileBlobStore) -> None:
    result = read("mimekit__outlook_tnef_winmail_koi8r.eml", blobs)
    (winmail,) = [p for p in result.parts if p.filename == "winmail.dat"]
    assert "шостий" in winmail.text and winmail.fields["tnef"] is True


def test_rtf_text_and_uncompressed_rtf() -> None:
    rtf = rb"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}\f0 Gr\'fc\'dfe\par Zeile \u8364? Euro}"
    assert rtf_to_text(rtf) == "Grüße\nZeile € Euro"
    stored = len(rtf).to_bytes(4, "little") * 0 + (len(rtf) + 12).to_bytes(4, "little") + len(rtf).to_bytes(
        4, "little") + b"MELA" + b"\x00" * 4 + rtf
    assert decompress_rtf(stored) == rtf
