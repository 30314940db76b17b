"""Structured XML from the corpus: UBL/CII invoices (and their embedded files), camt statements, C-CDA,
Factur-X/ZUGFeRD PDFs; invalid and truncated XML refused with the parser's line and column."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ingest.blobs import FileBlobStore
from ingest.errors import BadInput
from ingest.extract import Extraction, ExtractLimits, extract

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
XML = CORPUS / "xml"
PDF = CORPUS / "pdf"

pytestmark = pytest.mark.skipif(not XML.is_dir(), reason=f"corpus not found at {CORPUS}")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def run(data: bytes, blobs: FileBlobStore, filename: str | None, **limits: Any) -> Extraction:
    return extract(data, filename=filename, content_type=None, blobs=blobs,
                   limits=ExtractLimits.model_validate(limits))


def read(path: Path, blobs: FileBlobStore, **limits: Any) -> Extraction:
    return run(path.read_bytes(), blobs, path.name, **limits)


# --- invoices -----------------------------------------------------------------------------------


def test_ubl_invoice_fields(blobs: FileBlobStore) -> None:
    (part,) = read(XML / "en16931__ubl_invoice_example1_nl.xml", blobs).parts
    invoice = part.fields["invoice"]
    assert (invoice["syntax"], invoice["document"], invoice["type_code"]) == ("UBL", "Invoice", "380")
    assert (invoice["number"], invoice["issue_date"], invoice["currency"]) == ("12115118", "2015-01-09", "EUR")
    assert invoice["seller"]["name"] == "De Koksmaat"
    assert invoice["seller"]["vat_id"] == "NL8200.98.395.B.01" and invoice["seller"]["legal_id"] == "57151520"
    assert invoice["buyer"]["name"] == "ODIN 59" and invoice["buyer"]["ids"] == ["10202"]
    assert invoice["totals"] == {"line_total": "229.60", "net": "229.60", "tax": "20.73", "gross": "250.33",
                                 "payable": "250.33"}
    assert invoice["payment"]["ibans"] == ["NL57 RABO 0107307510", "NL03 INGB 0004489902"]
    assert invoice["lines"] == 20
    assert "12115118" in part.text


def test_ubl_credit_note_fields(blobs: FileBlobStore) -> None:
    invoice = read(XML / "en16931__ubl_creditnote1.xml", blobs).parts[0].fields["invoice"]
    assert (invoice["document"], invoice["type_code"], invoice["number"]) == ("CreditNote", "381", "018304 / 28865")
    assert invoice["issue_date"] == "2019-09-23"
    assert invoice["seller"]["name"] == "My Supplier Company N.V." and invoice["seller"]["vat_id"] == "BE0000000196"
    assert invoice["buyer"]["name"] == "My Customer Company S.A." and invoice["buyer"]["vat_id"] == "BE0000000295"
    assert invoice["totals"]["net"] == "100.11" and invoice["totals"]["tax"] == "0.00"
    assert invoice["totals"]["payable"] == "100.11"


def test_cii_invoice_has_the_same_keys_as_ubl(blobs: FileBlobStore) -> None:
    cii = read(XML / "en16931__uncefact_cii_invoice_example1.xml", blobs).parts[0].fields["invoice"]
    ubl = read(XML / "en16931__ubl_invoice_example1_nl.xml", blobs).parts[0].fields["invoice"]
    assert cii["syntax"] == "CII" and set(cii) == set(ubl)
    for key in ("number", "issue_date", "due_date", "type_code", "currency", "lines"):
        assert cii[key] == ubl[key], key
    assert cii["seller"]["name"] == "De Koksmaat" and cii["seller"]["vat_id"] == "NL8200.98.395.B.01"
    assert cii["buyer"]["name"] == "ODIN 59" and cii["buyer"]["ids"] == ["10202"]
    assert cii["totals"] == {"line_total": "229.6", "net": "229.6", "tax": "20.73", "gross": "250.33",
                             "payable": "250.33"}


def test_xrechnung_embedded_pdf_becomes_a_child_part(blobs: FileBlobStore) -> None:
    result = read(XML / "xrechnung__ubl_invoice_embedded_pdf_attachment.xml", blobs)
    invoice_part, attachment = result.parts
    invoice = invoice_part.fields["invoice"]
    assert invoice["number"] == "1234567" and invoice["currency"] == "EUR"
    assert invoice["totals"]["tax"] == "2048.44"  # the EUR TaxTotal, not the GBP one
    assert invoice["totals"]["payable"] == "12829.69"
    assert invoice["seller"]["vat_id"] == "ATU123456789" and invoice["seller"]["tax_id"] == "123/456/789"
    assert invoice["attachments"][0]["filename"] == "01_15_Anhang_01.pdf"
    assert len(invoice_part.text) < 20_000  # the base64 stays out of the text
    assert attachment.kind == "attachment" and attachment.index == 1
    assert attachment.filename == "01_15_Anhang_01.pdf" and attachment.content_type == "application/pdf"
    assert "Das könnte eine Anlage sein" in attachment.text
    assert attachment.fields["description"] == "Aufschlüsselung der einzelnen Leistungspositionen"
    assert attachment.fields["pages"] == 1
    assert attachment.blob_sha256 and blobs.read(attachment.blob_sha256).startswith(b"%PDF")


def test_cii_attachment_binary_object_is_decoded(blobs: FileBlobStore) -> None:
    data = (XML / "en16931__uncefact_cii_invoice_example1.xml").read_bytes()
    payload = base64.b64encode(b"Timesheet: 12 hours, Jan Jansen\n").decode()
    reference = (
        "<ram:AdditionalReferencedDocument><ram:IssuerAssignedID>TS-1</ram:IssuerAssignedID>"
        "<ram:TypeCode>916</ram:TypeCode><ram:Name>Timesheet</ram:Name>"
        f'<ram:AttachmentBinaryObject mimeCode="text/plain" filename="timesheet.txt">{payload}'
        "</ram:AttachmentBinaryObject></ram:AdditionalReferencedDocument>"
    )
    data = data.replace(b"</ram:ApplicableHeaderTradeAgreement>",
                        reference.encode() + b"</ram:ApplicableHeaderTradeAgreement>")
    invoice_part, attachment = run(data, blobs, "cii_with_timesheet.xml").parts
    assert invoice_part.fields["invoice"]["attachments"] == [
        {"id": "TS-1", "description": "Timesheet", "filename": "timesheet.txt", "mime_code": "text/plain",
         "embedded": True}
    ]
    assert attachment.filename == "timesheet.txt" and "Jan Jansen" in attachment.text


def test_embedded_attachment_that_is_not_base64_gets_an_error(blobs: FileBlobStore) -> None:
    data = (XML / "xrechnung__ubl_invoice_embedded_pdf_attachment.xml").read_bytes()
    data = re.sub(rb'(filename="01_15_Anhang_01.pdf">)[^<]+', rb"\1%%% not base64 %%%", data)
    invoice_part, attachment = run(data, blobs, "broken.xml").parts
    assert invoice_part.fields["invoice"]["number"] == "1234567"
    assert attachment.error is not None and "not valid base64" in attachment.error


def test_embedded_attachment_beyond_max_depth_is_stored_unread(blobs: FileBlobStore) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(XML / "xrechnung__ubl_invoice_embedded_pdf_attachment.xml", "invoice.xml")
    result = run(buffer.getvalue(), blobs, "batch.zip", max_depth=1)
    (member,) = result.parts
    assert "1234567" in member.text  # the invoice itself is read at depth 1
    assert any("max_depth" in w and "01_15_Anhang_01.pdf" in w for w in result.warnings), result.warnings


# --- bank statements ----------------------------------------------------------------------------


def test_camt053_statements_balances_and_entries(blobs: FileBlobStore) -> None:
    result = read(XML / "camt__camt053_v2_multi_statement.xml", blobs)
    statement = result.parts[0].fields["statement"]
    assert statement["message"] == "camt.053.001.02" and statement["message_id"] == "CAMT053RIB000000000001"
    first, second = statement["statements"]
    assert first["id"] == "253EURNL26VAYB8060476890" and first["account_iban"] == "NL26VAYB8060476890"
    assert [(b["type"], b["amount"], b["credit_debit"], b["date"]) for b in first["balances"]] == [
        ("OPBD", "18.15", "CRDT", "2014-12-30"), ("CLBD", "27.00", "CRDT", "2014-12-31")
    ]
    (entry,) = first["entries"]
    assert (entry["amount"], entry["currency"], entry["credit_debit"]) == ("8.85", "EUR", "CRDT")
    assert (entry["booking_date"], entry["value_date"], entry["status"]) == ("2014-12-31", "2015-01-02", "BOOK")
    assert entry["end_to_end_ids"] == ["000000001"] and entry["remittance"] == ["Transaction Description 1"]
    assert entry["transactions"][0]["creditor_iban"] == "NL56AGDH9619008421"
    assert second["balances"][1]["amount"] == "20.00"
    assert (second["entries"][0]["amount"], second["entries"][0]["credit_debit"]) == ("7.00", "DBIT")
    assert not result.warnings


def test_camt054_notification_entry_references(blobs: FileBlobStore) -> None:
    statement = read(XML / "camt__camt054_v4_debit_credit_notification.xml", blobs).parts[0].fields["statement"]
    assert statement["message"] == "camt.054.001.04" and statement["statement_element"] == "Ntfctn"
    (notification,) = statement["statements"]
    assert notification["account_iban"] == "CH2801234000123456789"
    assert notification["account_owner"] == "UNIFITS GmbH" and notification["servicer_bic"] == "UBSWCHZH80A"
    (entry,) = notification["entries"]
    assert (entry["amount"], entry["currency"], entry["credit_debit"]) == ("200000", "SEK", "DBIT")
    assert entry["booking_date"] == entry["value_date"] == "2007-10-18"
    assert entry["account_servicer_ref"] == "ACSR160617103200001"
    assert entry["end_to_end_ids"] == ["UXC06170000006PI00001EE00001", "UXC06170000006PI00001EE00002"]
    assert "Unstructured Remittance Information V1" in entry["remittance"]
    assert "ISR ref number V2" in entry["remittance"]
    assert [t["amount"] for t in entry["transactions"]] == ["3.1", "3.2", "3.2"]
    assert entry["transactions"][0]["creditor"] == "Example Creditor 3 - V1"


def test_camt053_without_statement_reads_with_a_warning(blobs: FileBlobStore) -> None:
    # well-formed, but schema-invalid: the group header is there, the Stmt element is not
    result = read(XML / "camt__camt053_v2_no_statement_invalid.xml", blobs)
    statement = result.parts[0].fields["statement"]
    assert statement["message_id"] == "CAMT053RIB000000000001" and statement["statements"] == []
    assert any("holds no statement" in w for w in result.warnings), result.warnings


# --- C-CDA --------------------------------------------------------------------------------------


def test_ccda_patient_title_and_organisation(blobs: FileBlobStore) -> None:
    ccda = read(XML / "ccda__cerner_transition_of_care_referral.xml", blobs).parts[0].fields["ccda"]
    assert ccda["title"] == "Transition of Care/Referral Summary"
    assert ccda["patient"]["name"] == "Steve Williamson" and ccda["patient"]["birth_date"] == "1947-04-07"
    assert ccda["organization"] == "Local Community Hospital Organization"
    assert ccda["effective_date"] == "2013-07-17"


def test_ccd_extension_with_empty_title_and_null_name_parts(blobs: FileBlobStore) -> None:
    ccda = read(XML / "ccda__kareo_ccd_export.ccd", blobs).parts[0].fields["ccda"]
    assert ccda["title"] == "Summarization of episode note"  # <title/> is empty: the code's display name
    assert ccda["patient"]["name"] == "JOEY MILLER"  # the exporter's <given>null</given> is dropped
    assert ccda["patient"]["birth_date"] == "1947-10-10" and ccda["patient"]["gender"] == "M"
    assert ccda["author_organization"] is None and ccda["organization"] == "KAREO EHR"


# --- not well-formed ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["camt__camt053_v2_multi_statement.xml", "en16931__ubl_creditnote1.xml"])
@pytest.mark.parametrize("filename", ["cut.xml", None])
def test_truncated_xml_fails_with_line_and_column(blobs: FileBlobStore, name: str, filename: str | None) -> None:
    data = (XML / name).read_bytes()
    with pytest.raises(BadInput, match=r"not well-formed \(.*line \d+, column \d+\)"):
        run(data[: len(data) * 2 // 3], blobs, filename)


def test_truncated_xml_attachment_fails_as_a_part_only(blobs: FileBlobStore) -> None:
    data = (XML / "en16931__ubl_creditnote1.xml").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cut.xml", data[:2000])
        archive.writestr("whole.xml", data)
    cut, whole = run(buffer.getvalue(), blobs, "two.zip").parts
    assert cut.error is not None and re.search(r"line \d+, column \d+", cut.error)
    assert whole.fields["invoice"]["number"] == "018304 / 28865"


def test_markup_that_only_looked_like_xml_is_read_leniently(blobs: FileBlobStore) -> None:
    readme = CORPUS / "sms" / "SMSSpamCollection.readme.md"  # starts with <details>, not XML
    result = read(readme, blobs)
    assert "SMS Spam Collection v.1" in result.parts[0].text
    assert any("not XML after all" in w for w in result.warnings)
    postscript = run(b"<<\n  /ASCII85EncodePages false\n  /AutoRotatePages /None\n>> setdistillerparams\n",
                     blobs, None)
    assert "ASCII85EncodePages" in postscript.parts[0].text


# --- Factur-X / ZUGFeRD PDFs --------------------------------------------------------------------

FACTURX = [
    ("mustang__facturx_dynamics_invoice_special_chars.pdf", "factur-x.xml", "103767", "681.87", "CRONUS DE"),
    ("mustang__facturx_fr_credit_note_emoji.pdf", "factur-x.xml", "AV-2017-0005", "-233.47", "Au bon moulin"),
    ("mustang__zugferd1_fleet_invoice_oracle.pdf", "zugferd-invoice.xml", "2015738820", "447.88",
     "Alphabet Fuhrparkmanagement GmbH"),
]


@pytest.mark.parametrize(("name", "xml_name", "number", "payable", "seller"), FACTURX)
def test_facturx_pdf_embedded_xml_is_a_child_part(
    blobs: FileBlobStore, name: str, xml_name: str, number: str, payable: str, seller: str
) -> None:
    page_set, embedded = read(PDF / name, blobs).parts
    assert page_set.kind == "page_set" and page_set.fields["embedded_files"] == [xml_name]
    assert page_set.text.strip() and "<rsm:" not in page_set.text
    assert embedded.kind == "attachment" and embedded.filename == xml_name
    invoice = embedded.fields["invoice"]
    assert (invoice["number"], invoice["totals"]["payable"], invoice["seller"]["name"]) == (number, payable, seller)
    assert invoice["currency"] == "EUR"
    assert embedded.blob_sha256 and blobs.read(embedded.blob_sha256).lstrip().startswith(b"<?xml")


def test_pdf_without_embedded_files_has_one_part(blobs: FileBlobStore) -> None:
    result = read(PDF / "mustang__corrupted_xref_invoice.pdf", blobs)
    assert len(result.parts) == 1 and "embedded_files" not in result.parts[0].fields
