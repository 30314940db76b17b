"""PDF, XML, HTML, CSV, images and archives: real corpus files and hostile inputs built here."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.errors import BadInput, LimitExceeded
from ingest.extract import ArchiveLimits, Extraction, ExtractLimits, extract

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def read(path: Path, blobs: FileBlobStore, limits: ExtractLimits | None = None) -> Extraction:
    return extract(path.read_bytes(), filename=path.name, content_type=None, blobs=blobs,
                   limits=limits or ExtractLimits())


def run(data: bytes, blobs: FileBlobStore, filename: str | None = None, **limits: object) -> Extraction:
    return extract(data, filename=filename, content_type=None, blobs=blobs,
                   limits=ExtractLimits.model_validate(limits))


# --- PDF ----------------------------------------------------------------------------------------


@needs_corpus
def test_pdf_text_layer_pages_joined_by_form_feeds(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "pdf" / "pdfplumber__fr_proces_verbal_minutes.pdf", blobs)
    (part,) = result.parts
    assert part.kind == "page_set" and part.fields["pages"] == 2
    assert part.text.count("\f") == 1
    assert "PROCÈS-VERBAL" in part.text
    assert part.blob_sha256 and blobs.read(part.blob_sha256).startswith(b"%PDF")


@needs_corpus
def test_pdf_encrypted_with_unknown_password_is_refused(blobs: FileBlobStore) -> None:
    with pytest.raises(BadInput, match="encrypted"):
        read(CORPUS / "pdf" / "pdfplumber__password_protected.pdf", blobs)


@needs_corpus
def test_pdf_encrypted_with_configured_password_is_read(blobs: FileBlobStore) -> None:
    limits = ExtractLimits.model_validate({"pdf_passwords": ["wrong", "test"]})
    result = read(CORPUS / "pdf" / "pdfplumber__password_protected.pdf", blobs, limits)
    assert result.parts[0].text.strip()


@needs_corpus
def test_pdf_owner_password_only_opens_with_empty_password(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "pdf" / "pdfplumber__bank_loan_rates_encrypted.pdf", blobs)
    assert "Effective as at 9 April 2019" in result.parts[0].text


@needs_corpus
def test_pdf_zero_bytes_and_corrupt_are_refused_with_reason(blobs: FileBlobStore) -> None:
    with pytest.raises(BadInput, match="empty file"):
        read(CORPUS / "pdf" / "pdfplumber__empty_zero_bytes.pdf", blobs)
    with pytest.raises(BadInput, match=r"PDF is cut short \(no end-of-file marker\).*ask the sender to send it again"):
        run(b"%PDF-1.4\n" + b"\x00garbage" * 50, blobs, "x.pdf")  # no %%EOF: the reason says what to do


@needs_corpus
def test_pdf_corrupted_xref_is_repaired(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "pdf" / "mustang__corrupted_xref_invoice.pdf", blobs)
    assert "RE-20171118/506" in result.parts[0].text


@needs_corpus
def test_pdf_page_limit(blobs: FileBlobStore) -> None:
    with pytest.raises(LimitExceeded, match="max_pdf_pages"):
        read(CORPUS / "pdf" / "pdfplumber__ca_warn_report_excel_16p.pdf", blobs, ExtractLimits(max_pdf_pages=5))


@needs_corpus
@needs_tesseract
def test_scanned_pdf_is_ocred(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "scans" / "ocrmypdf__c02-22_book_page_scan.pdf", blobs)
    part = result.parts[0]
    assert part.fields["pages_without_text"] == [1] and part.fields["pages_ocr"] == [1]
    assert len(part.text.split()) > 50


def test_ocr_off_leaves_a_reason(blobs: FileBlobStore) -> None:
    if not CORPUS.is_dir():
        pytest.skip("corpus not found")
    limits = ExtractLimits(ocr_enabled=False)
    result = read(CORPUS / "scans" / "ocrmypdf__c02-22_book_page_scan.pdf", blobs, limits)
    assert result.parts[0].error is not None and "OCR" in result.parts[0].error
    assert any("pages without usable text" in w for w in result.warnings)


# --- images -------------------------------------------------------------------------------------


@needs_corpus
@needs_tesseract
def test_fax_tiff_is_ocred(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "scans" / "libtiffnet__CCITT_1_slerexe_business_letter_g4.tif", blobs)
    part = result.parts[0]
    assert part.kind == "page_set" and part.error is None
    assert "Slerexe" in part.text or "SLEREXE" in part.text.upper()


# --- XML ----------------------------------------------------------------------------------------


@needs_corpus
def test_xml_invoice_text_and_root(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "xml" / "en16931__ubl_invoice_example1_nl.xml", blobs)
    part = result.parts[0]
    assert part.fields["root"] == "Invoice"
    assert "12115118" in part.text


@needs_corpus
def test_xml_with_embedded_pdf_leaves_base64_out(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "xml" / "xrechnung__ubl_invoice_embedded_pdf_attachment.xml", blobs)
    assert result.parts[0].fields["skipped_binary_elements"] == ["EmbeddedDocumentBinaryObject"]
    assert len(result.parts[0].text) < 20_000


def test_xml_entity_bomb_is_refused(blobs: FileBlobStore) -> None:
    bomb = b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    bomb += b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
    )
    bomb += b"]>\n<lolz>&lol9;</lolz>\n"
    with pytest.raises(BadInput, match="entit"):
        run(bomb, blobs, "bomb.xml")


def test_xml_external_entity_is_refused(blobs: FileBlobStore) -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(BadInput):
        run(xxe, blobs, "xxe.xml")


def test_xml_not_well_formed_fails_with_the_parsers_reason(blobs: FileBlobStore) -> None:
    with pytest.raises(BadInput, match=r"line \d+, column \d+"):
        run(b"<?xml version='1.0'?><Doc><Name>ACME Ltd</Name><Amount>12.50", blobs, "cut.xml")


# --- HTML ---------------------------------------------------------------------------------------


@needs_corpus
def test_html_with_lying_meta_charset(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "html" / "readability__qq_news_charset_mismatch.html", blobs)
    text = result.parts[0].text
    assert "腾讯网" in text and "\ufffd" not in text
    assert result.parts[0].fields["charset"] == "utf-8"


@needs_corpus
def test_html_skips_scripts(blobs: FileBlobStore) -> None:
    text = read(CORPUS / "html" / "kinsights__bluebutton_bbclear_health_record.html", blobs).parts[0].text
    assert "ClinicalDocument" not in text  # the C-CDA lives in a <script> after </html>
    assert "Blue Button Health Record" in text


@needs_corpus
def test_html_carrying_a_ccda_in_a_data_script_gives_it_as_a_structured_part(blobs: FileBlobStore) -> None:
    parts = read(CORPUS / "html" / "kinsights__bluebutton_bbclear_health_record.html", blobs).parts
    assert [(p.index, p.kind, p.filename) for p in parts][1:] == [(1, "attachment", "xmlBBData.xml")]
    assert parts[1].fields["ccda"]["patient"]["name"] == "Timmy Wilkinson"
    assert parts[1].fields["embedded_in"] == "html script" and parts[1].error is None


def test_html_data_scripts_that_are_not_xml_or_are_bombs_do_no_harm(blobs: FileBlobStore) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            "<b>&b;</b>")
    page = (f'<html><body><p>Hello</p><script>var x = "<b>";</script>'
            f'<script type="text/plain" id="notes">just words</script>'
            f"<script type='text/xml' id='evil'>{bomb}</script></body></html>").encode()
    parts = run(page, blobs, "page.html").parts
    assert [p.filename for p in parts] == ["page.html", "evil.xml"]
    assert parts[0].text.strip() == "Hello"
    assert parts[1].error and "entit" in parts[1].error.lower()


# --- CSV and text -------------------------------------------------------------------------------


@needs_corpus
def test_csv_records_with_header(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "csv" / "csvkit__fy09_edu_recipients_by_state.csv", blobs)
    assert all(p.kind == "record" for p in result.parts)
    first = result.parts[0]
    assert first.fields["header"][0] == "State Name"
    assert first.fields["values"]["State Name"] == "ALABAMA"


@needs_corpus
def test_csv_cut_mid_record_and_max_parts(blobs: FileBlobStore) -> None:
    path = CORPUS / "csv" / "cfpb__complaints_export_truncated_1MiB.csv"
    result = read(path, blobs, ExtractLimits(max_parts=10_000))
    assert any("middle of a record" in w for w in result.warnings)
    assert len(result.parts) > 1000
    capped = read(path, blobs, ExtractLimits(max_parts=20))
    assert len(capped.parts) == 20 and any("max_parts" in w for w in capped.warnings)


@needs_corpus
def test_pipe_delimited_txt_is_read_as_records(blobs: FileBlobStore) -> None:
    result = read(CORPUS / "csv" / "csvkit__nrc_event_notifications_pipe_delimited.txt", blobs)
    assert result.parts[0].fields["delimiter"] == "|"
    assert "Site Name" in result.parts[0].fields["values"]


def test_plain_text_charsets(blobs: FileBlobStore) -> None:
    assert run("Grüße".encode(), blobs, "a.txt").parts[0].text == "Grüße"
    assert run("Grüße".encode("utf-16"), blobs, "a.txt").parts[0].text == "Grüße"
    assert run("Grüße \u2013 ok".encode("cp1252"), blobs, "a.txt").parts[0].text == "Grüße \u2013 ok"


def test_empty_item_is_refused(blobs: FileBlobStore) -> None:
    with pytest.raises(BadInput, match="empty file"):
        run(b"", blobs, "x.txt")


def test_too_large_item_is_refused(blobs: FileBlobStore) -> None:
    with pytest.raises(LimitExceeded, match="max_bytes"):
        run(b"x" * 2000, blobs, "x.txt", max_bytes=1000)


def test_unknown_binary_is_stored_unread(blobs: FileBlobStore) -> None:
    result = run(b"\x00\x01\x02\x03binary" * 10, blobs, "thing.bin")
    (part,) = result.parts
    assert part.kind == "file" and part.blob_sha256
    assert part.error is not None and part.error.startswith("unsupported type")


# --- archives -----------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_members_become_parts(blobs: FileBlobStore) -> None:
    inner = _zip({"deep.txt": b"inside the inner zip"})
    data = _zip({"a.txt": b"hello a", "b.csv": b"x,y\n1,2\n", "inner.zip": inner, "empty.txt": b""})
    result = run(data, blobs, "bundle.zip")
    by_name = {p.filename: p for p in result.parts}
    assert by_name["a.txt"].text == "hello a" and by_name["a.txt"].blob_sha256
    assert "x: 1" in by_name["b.csv"].text
    assert "inside the inner zip" in by_name["inner.zip"].text
    assert by_name["empty.txt"].error is not None


def test_zip_bomb_is_refused(blobs: FileBlobStore) -> None:
    bomb = _zip({"zeros.bin": b"\x00" * (20 * 1024 * 1024)})  # ~1000:1
    with pytest.raises(LimitExceeded, match="max_ratio"):
        run(bomb, blobs, "bomb.zip")


def test_zip_total_and_member_limits(blobs: FileBlobStore) -> None:
    many = _zip({f"f{i}.txt": b"x" for i in range(30)})
    with pytest.raises(LimitExceeded, match="max_members"):
        extract(many, filename="many.zip", content_type=None, blobs=blobs,
                limits=ExtractLimits(archive=ArchiveLimits(max_members=10)))
    big = _zip({"a.txt": b"abc" * 100_000})
    with pytest.raises(LimitExceeded, match="total_uncompressed"):
        extract(big, filename="big.zip", content_type=None, blobs=blobs,
                limits=ExtractLimits(archive=ArchiveLimits(total_uncompressed=1000, max_ratio=10_000)))


def test_nested_zips_stop_at_max_depth(blobs: FileBlobStore) -> None:
    data = b"bottom"
    for level in range(6):
        data = _zip({f"level{level}.zip" if level else "bottom.txt": data})
    result = run(data, blobs, "nest.zip", max_depth=3)
    assert "max_depth" in (result.parts[0].error or "") + " ".join(result.warnings)


@needs_corpus
def test_pdfs_read_from_many_threads_at_once_read_as_they_do_alone(blobs: FileBlobStore) -> None:
    """PDFium is not thread-safe; the extract stage and the connectors share one lock for it."""
    from concurrent.futures import ThreadPoolExecutor

    names = ["pdfplumber__fr_proces_verbal_minutes.pdf", "pdfplumber__invoice_line_items_itext.pdf",
             "pdfplumber__ledger_account_statement.pdf", "pdfplumber__pdffill_form_annotations_demo.pdf",
             "mustang__zugferd1_fleet_invoice_oracle.pdf", "pdfplumber__us_senate_expenditures_table.pdf"]
    limits = ExtractLimits(ocr_enabled=False)
    alone = {n: [p.text for p in read(CORPUS / "pdf" / n, blobs, limits).parts] for n in names}
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda n: (n, [p.text for p in read(CORPUS / "pdf" / n, blobs, limits).parts]),
                                 names * 4))
    assert all(texts == alone[n] for n, texts in together)


@pytest.mark.timeout(60)  # the regular expressions this replaced took hours on these
def test_hostile_html_is_read_in_linear_time(blobs: FileBlobStore) -> None:
    comments = '<script type="text/plain">' + "<!-- a -->" * 40 + "!</script>"
    unclosed = "<script>" * 20000 + "<title>" * 20000
    parts = run(f"<html><body><p>Hi</p>{comments}{unclosed}</body></html>".encode(), blobs, "x.html").parts
    assert [p.index for p in parts] == [0] and parts[0].text.strip().startswith("Hi")
