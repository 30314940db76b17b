"""Email extraction on real mail from the corpus, and on small messages built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.extract import Extraction, ExtractLimits, extract

EMAIL = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "email"

pytestmark = pytest.mark.skipif(not EMAIL.is_dir(), reason=f"corpus not found at {EMAIL}")

BOUNCES: dict[str, str | None] = {
    "flanker__bounce_aol_mailbox_full.eml": "4E326A95.3010907@example.com",
    "flanker__bounce_delayed_no_mx.eml": "19E44CA63F984902B7D654F8FF40F89D@bo",
    "flanker__bounce_gmail_invalid_address.eml": "CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com",
    "flanker__bounce_office365.eml": "20171013111011.20866.254C2F3A4D7AA526@ninomail.com",
    "flanker__bounce_sendmail_1994.eml": None,
    "mikel__sendmail_delay_warning_report.eml": "15655788.13.1200472642578.JavaMail.Administrator@mail.ttttt.com.au",
    "sisimai__bounce_amazonses.eml": "000001321defbd2a-788e31c8-2be1-422f-a8d4-cf7765cc9ed7-000000@email.amazonses.com",
    "sisimai__bounce_exchange2007_with_image.eml": "20110429233445.FFFFFFFFEEE@neko.example.com",
    "sisimai__bounce_exim_CR_line_endings.eml": "E1P1ce6-000Egt-GZ@e1.example.org",
    "sisimai__bounce_kddi_raw_8bit_subject.eml": "2013000000000000@example.jp",
    "sisimai__bounce_lotus_notes_iso2022jp.eml": "000000000.0000000000000.notes@example.co.jp",
    "sisimai__bounce_mailru_ru.eml": "8F3CE2D8-D60E-48C3-B9AF-BED628EE2CA5@mail.example.ru",
    "sisimai__bounce_office365_cp1252.eml": "FFFFFFFF.EEEEEEEE@example.ed.jp",
    "sisimai__bounce_orange_fr.eml": "20FA40A8-4F88-4453-953D-B7038769D040@example.co.jp",
    "sisimai__bounce_postfix_iso2022jp_original.eml": "20140701000000.000000000000@e1.example.ne.jp",
    "sisimai__bounce_qmail_failure_notice.eml": "000000000.9999999999999.JavaMail.postmaster@mailhub",
    "spamscope__mail_malformed_2.eml": "004801d1fc84$01c934ac$b247f0b7$@infospacemail.com",
}
AUTO_REPLIES = [
    "sisimai__autoreply_apple_auto_reply.eml",
    "sisimai__autoreply_autorespons_html.eml",
    "sisimai__autoreply_outlook_automatic_reply.eml",
    "sisimai__autoreply_windows1252.eml",
]
REPORTS = ["flanker__arf_complaint_aol.eml", "flanker__arf_complaint_yahoo.eml", "flanker__mdn_read_receipt.eml"]
PEOPLE_AND_LISTS = [
    "flanker__1996_fwd_message_news.eml",
    "flanker__1997_latin1_raw_from.eml",
    "flanker__1997_message_external_body.eml",
    "mikel__2001_newsletter_bad_cte_8bits.eml",
    "mikel__2002_discover_card_newsletter.eml",
    "sisimai__not_bounce_original_as_attachment.eml",
    "spamscope__mail_test_13_webinar.eml",
    "spamscope__mail_test_5_fr_newsletter.eml",
    "spamscope__mail_test_6_ru_html.eml",
    "flanker__forwarded_rfc822.eml",
    "flanker__fwd_multi_received.eml",
]


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")  # per test: cheap, and the tests can spread over xdist workers


def read(name: str, blobs: FileBlobStore, **limits: int) -> Extraction:
    return extract((EMAIL / name).read_bytes(), filename=name, content_type=None, blobs=blobs,
                   limits=ExtractLimits(**limits))


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_bounces_are_flagged_with_the_original_message_id(name: str, blobs: FileBlobStore) -> None:
    result = read(name, blobs)
    assert result.email is not None
    assert result.email.is_bounce
    assert result.email.original_message_id == BOUNCES[name]


@pytest.mark.parametrize("name", AUTO_REPLIES)
def test_auto_replies_are_flagged(name: str, blobs: FileBlobStore) -> None:
    result = read(name, blobs)
    assert result.email is not None
    assert result.email.is_auto_reply
    assert not result.email.is_bounce


@pytest.mark.parametrize("name", REPORTS)
def test_abuse_reports_and_read_receipts_are_automatic_mail(name: str, blobs: FileBlobStore) -> None:
    result = read(name, blobs)
    assert result.email is not None
    assert result.email.is_auto_reply or result.email.is_bounce


@pytest.mark.parametrize("name", PEOPLE_AND_LISTS)
def test_people_newsletters_and_lists_are_not_bounces_or_auto_replies(name: str, blobs: FileBlobStore) -> None:
    result = read(name, blobs)
    assert result.email is not None
    assert not result.email.is_bounce
    assert not result.email.is_auto_reply


def test_newsletters_are_bulk(blobs: FileBlobStore) -> None:
    for name in ("spamscope__mail_test_13_webinar.eml", "spamscope__mail_test_5_fr_newsletter.eml"):
        email = read(name, blobs).email
        assert email is not None and email.is_bulk, name


def test_gb2312_mail_is_decoded_as_chinese(blobs: FileBlobStore) -> None:
    result = read("spamscope__mail_test_12_gb2312_plain.eml", blobs)
    assert result.email is not None
    assert result.email.subject == "代开各地增值税发票"
    assert result.email.from_name == "张先生"
    assert result.email.from_addr == "baoguan@hotmail.com"
    assert "增值税发票" in result.parts[0].text
    assert "\ufffd" not in result.parts[0].text


def test_gb2312_subject_with_characters_outside_gb2312_is_decoded(blobs: FileBlobStore) -> None:
    result = read("spamscope__mail_test_9_gb2312.eml", blobs)
    assert result.email is not None
    assert result.email.subject.startswith("我把镜头拉近些")
    assert "\ufffd" not in result.email.subject
    assert "我把镜头拉近些" in result.parts[0].text  # HTML body converted to visible text
    assert "<" not in result.parts[0].text


def test_shift_jis_mail_is_decoded_as_japanese(blobs: FileBlobStore) -> None:
    body = read("mikel__docomo_shift_jis.eml", blobs).parts[0].text
    assert "このメールはテスト用のメールです" in body


def test_ks_c_5601_mail_is_decoded_as_korean(blobs: FileBlobStore) -> None:
    body = read("mikel__korean_ks_c_5601_1987.eml", blobs).parts[0].text
    assert body.strip() and all("\uac00" <= c <= "\ud7a3" for c in body.strip())


def test_iso_2022_jp_bounce_subject_and_body(blobs: FileBlobStore) -> None:
    result = read("sisimai__bounce_kddi_raw_8bit_subject.eml", blobs)
    assert result.email is not None and result.email.subject == "メールエラー通知"
    assert "送信できませんでした" in result.parts[0].text


def test_forwarded_message_is_read(blobs: FileBlobStore) -> None:
    result = read("flanker__forwarded_rfc822.eml", blobs)
    assert result.parts[0].kind == "body" and result.parts[0].text.strip() == "Hello"
    forwarded = result.parts[1]
    assert forwarded.kind == "attachment" and forwarded.fields["forwarded"] is True
    assert "Subject: Thanks!" in forwarded.text
    assert "you're kicking ass" in forwarded.text
    assert "чтобы я без вас делал" in forwarded.text
    assert forwarded.blob_sha256 is not None
    assert b"Thanks!" in blobs.read(forwarded.blob_sha256)


def test_raw_8bit_latin1_header_is_decoded(blobs: FileBlobStore) -> None:
    email = read("flanker__1997_latin1_raw_from.eml", blobs).email
    assert email is not None and email.from_name == "Ingo Lütkebohle"


def test_raw_8bit_utf8_headers_and_broken_boundary(blobs: FileBlobStore) -> None:
    result = read("flanker__raw_8bit_headers.eml", blobs)
    assert result.email is not None
    assert result.email.from_name is not None and result.email.from_name.startswith("Юникод")
    assert result.parts[0].text.strip() == "Hello"


def test_bare_cr_line_endings_are_normalised(blobs: FileBlobStore) -> None:
    result = read("sisimai__bounce_exim_CR_line_endings.eml", blobs)
    assert result.email is not None and result.email.subject == "Mail delivery failed: returning message to sender"
    assert result.parts[0].text.count("\n") > 5
    assert "\r" not in result.parts[0].text


def test_pdf_attachment_is_stored_and_read(blobs: FileBlobStore) -> None:
    result = read("spamscope__mail_test_10_it_pdf.eml", blobs)
    pdf = next(p for p in result.parts if (p.filename or "").endswith(".pdf"))
    assert pdf.kind == "attachment" and pdf.fields["pages"] == 10
    assert "Move to Eight" in pdf.text
    assert pdf.blob_sha256 is not None and blobs.read(pdf.blob_sha256).startswith(b"%PDF")
    assert result.email is not None and result.email.from_addr == "nicoletta_bernasconi@it.ibm.com"


def test_tnef_attachment_is_stored_and_unpacked(blobs: FileBlobStore) -> None:
    result = read("mimekit__outlook_tnef_winmail_koi8r.eml", blobs)
    assert "шостий" in result.parts[0].text  # KOI8-R body
    winmail = result.parts[1]
    assert winmail.filename == "winmail.dat" and winmail.blob_sha256
    assert winmail.error is None and "шостий" in winmail.text and winmail.fields["tnef"] is True


def test_torture_test_is_read_within_the_depth_limit(blobs: FileBlobStore) -> None:
    result = read("flanker__mime_torture_test_1993.eml", blobs)
    assert len(result.parts) > 10
    assert all(p.text.strip() or p.error for p in result.parts)
    shallow = read("flanker__mime_torture_test_1993.eml", blobs, max_depth=2)
    assert any("max_depth" in (p.error or "") for p in shallow.parts)


# --- small messages built here ---------------------------------------------------------------


def _extract(raw: bytes, blobs: FileBlobStore, **limits: int) -> Extraction:
    return extract(raw, filename="m.eml", content_type="message/rfc822", blobs=blobs,
                   limits=ExtractLimits(**limits))


def test_simple_email(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    raw = (
        b"From: =?utf-8?q?Jos=C3=A9_P=C3=A9rez?= <Jose.Perez@Example.COM>\r\n"
        b"To: cases@example.org, Other <other@example.org>\r\n"
        b"Cc: cc@example.org\r\n"
        b"Subject: =?iso-8859-1?q?R=E9clamation?= CASE-123\r\n"
        b"Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n"
        b"Message-ID: <abc@example.com>\r\n"
        b"In-Reply-To: <prev@example.org>\r\n"
        b"References: <first@example.org> <prev@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour, ma r\xc3\xa9clamation.\r\n"
        b"--XX\r\nContent-Type: text/csv; name=list.csv\r\nContent-Disposition: attachment; filename=list.csv\r\n\r\n"
        b"name,amount\r\nA,1\r\nB,2\r\n"
        b"--XX--\r\n"
    )
    result = _extract(raw, blobs)
    email = result.email
    assert email is not None
    assert email.from_addr == "jose.perez@example.com" and email.from_name == "José Pérez"
    assert email.to == ["cases@example.org", "other@example.org"] and email.cc == ["cc@example.org"]
    assert email.subject == "Réclamation CASE-123"
    assert email.date is not None and email.date.isoformat() == "2024-01-02T10:00:00+01:00"
    assert email.message_id == "abc@example.com" and email.in_reply_to == "prev@example.org"
    assert email.references == ["first@example.org", "prev@example.org"]
    assert not (email.is_bounce or email.is_auto_reply or email.is_bulk)
    body, attachment = result.parts
    assert body.kind == "body" and body.text.strip() == "Bonjour, ma réclamation."
    assert attachment.kind == "attachment" and attachment.filename == "list.csv"
    assert "name: A" in attachment.text and "amount: 2" in attachment.text
    assert attachment.blob_sha256 and blobs.read(attachment.blob_sha256).startswith(b"name,amount")


def test_html_only_email_and_unknown_charset(tmp_path: Path) -> None:
    raw = (
        b"From: a@example.com\nTo: b@example.com\nSubject: hi\nMessage-ID: <1@x>\n"
        b"Content-Type: text/html; charset=x-unknown-charset\n\n"
        b"<html><head><style>p{}</style><script>alert(1)</script></head>"
        b"<body><p>Caf\xe9 &amp; cr\xe8me</p></body></html>\n"
    )
    result = _extract(raw, FileBlobStore(tmp_path))
    assert result.parts[0].text == "Café & crème"


def _alternative_mail(plain: str, html: str) -> bytes:
    return (
        "From: forms@council.example\nTo: cases@example.org\nSubject: Form submission\nMessage-ID: <f@x>\n"
        "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=B\n\n"
        f"--B\nContent-Type: text/plain; charset=utf-8\n\n{plain}\n"
        f"--B\nContent-Type: text/html; charset=utf-8\n\n{html}\n--B--\n"
    ).encode()


def test_a_plain_stub_beside_the_html_is_not_taken_for_the_message(tmp_path: Path) -> None:
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in [
        ("Name", "Mary Ellen Carter"), ("Reference", "CASE-2024-000123"), ("Postcode", "SW1A 1AA"),
        ("Phone", "07700 900123"), ("Complaint", "The repair visit booked for 3 May never happened and "
                                                "nobody rang to rearrange it, so I lost a day's pay waiting in")])
    html = f"<html><body><p>A form was submitted on our website.</p><table>{rows}</table></body></html>"
    stub = _extract(_alternative_mail("This message is in HTML format. See the form below.", html),
                    FileBlobStore(tmp_path))
    assert "CASE-2024-000123" in stub.parts[0].text and "Mary Ellen Carter" in stub.parts[0].text
    assert "HTML format" not in stub.parts[0].text
    # a short message whose plain part a mail client wrote from the HTML is read from the plain part
    plain = "Please ring me about CASE-2024-000123 tomorrow morning, I am in from nine. Jo"
    html = ("<div dir='ltr'><p>Please ring me about <b>CASE-2024-000123</b> tomorrow morning, I am in from "
            "nine.</p><p>Jo</p><p style='color:grey'>Sent from my phone, please excuse typos</p></div>")
    kept = _extract(_alternative_mail(plain, html), FileBlobStore(tmp_path))
    assert kept.parts[0].text.strip() == plain and kept.parts[0].content_type == "text/plain"


def test_uuencoded_file_in_plain_body(tmp_path: Path) -> None:
    import binascii

    line = binascii.b2a_uu(b"hello from a uuencoded file\n")
    raw = (
        b"From: a@example.com\nTo: b@example.com\nSubject: uu\nMessage-ID: <2@x>\n\n"
        b"See attached.\n\nbegin 644 note.txt\n" + line + b"`\nend\n"
    )
    result = _extract(raw, FileBlobStore(tmp_path))
    assert "See attached." in result.parts[0].text and "begin 644" not in result.parts[0].text
    assert result.parts[1].filename == "note.txt"
    assert result.parts[1].text.strip() == "hello from a uuencoded file"


def test_deep_nesting_stops_at_max_depth(tmp_path: Path) -> None:
    depth = 30
    raw = b"From: a@example.com\nTo: b@example.com\nSubject: deep\nMessage-ID: <3@x>\n"
    for level in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (level, level)
    raw += b"Content-Type: text/plain\n\ndeep inside\n"
    for level in reversed(range(depth)):
        raw += b"--b%d--\n" % level
    result = _extract(raw, FileBlobStore(tmp_path))
    assert any("max_depth" in (p.error or "") for p in result.parts)
    assert all(p.text.strip() or p.error for p in result.parts)


def test_out_of_office_by_header_and_subject(tmp_path: Path) -> None:
    raw = (
        b"From: x@example.com\nTo: y@example.com\nSubject: Out of Office: back Monday\n"
        b"Message-ID: <4@x>\nIn-Reply-To: <orig@example.org>\n\nI am away.\n"
    )
    email = _extract(raw, FileBlobStore(tmp_path)).email
    assert email is not None and email.is_auto_reply and not email.is_bounce
    assert email.original_message_id == "orig@example.org"


def test_parsed_headers_are_memoised_per_message_and_only_when_short() -> None:
    from ingest.extract.email import parse_message

    long_type = "text/plain; " + "; ".join(f"p{i}=v{i}" for i in range(100))
    raw = f"Subject: hi\r\nContent-Type: {long_type}\r\n\r\nbody".encode()
    first, second = parse_message(raw), parse_message(raw)
    assert first.policy is not second.policy, "a memo must die with its message"
    assert first["subject"] is first["subject"], "short headers are parsed once"
    assert first["content-type"] is not first["content-type"], "long ones are not kept"
    assert first.get_content_type() == "text/plain" and first.get_param("p99") == "v99"
