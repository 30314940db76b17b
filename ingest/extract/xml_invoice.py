"""E-invoices: UBL 2 Invoice/CreditNote and UN/CEFACT CII (Factur-X, ZUGFeRD 1 and 2, XRechnung).

``invoice_fields`` gives the same keys for both syntaxes; amounts are kept as written in the file
(decimal strings, never floats). ``embedded_files`` lists the base64 attachments an invoice carries.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from ingest.extract.xml_paths import attr, find, find_all, find_any, first, iso_date, local, namespace, text, texts

UBL_PREFIX = "urn:oasis:names:specification:ubl:schema:xsd:"
CII_NAMESPACES = {
    "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100": "CII",
    "urn:ferd:CrossIndustryDocument:invoice:1p0": "ZUGFeRD 1",
}
# UNTDID 1001 document types that are credit notes
_CREDIT_TYPES = {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}


@dataclass(frozen=True)
class EmbeddedFile:
    """A base64 attachment inside an invoice, not yet decoded."""

    payload: str
    filename: str | None
    content_type: str | None
    description: str | None


def syntax(root: ET.Element) -> str | None:
    """'UBL' or 'CII'/'ZUGFeRD 1' when ``root`` is an e-invoice this module reads, else None."""
    ns = namespace(root.tag) or ""
    if ns.startswith(UBL_PREFIX) and local(root.tag) in ("Invoice", "CreditNote"):
        return "UBL"
    if local(root.tag) in ("CrossIndustryInvoice", "CrossIndustryDocument"):
        return CII_NAMESPACES.get(ns)
    return None


def _amount(element: ET.Element | None, path: str, currency: str | None = None) -> str | None:
    """The amount at ``path``; where several are given (UBL TaxTotal in two currencies), the one in ``currency``."""
    found = find_all(element, path)
    if currency and len(found) > 1:
        found = [e for e in found if e.get("currencyID") in (None, currency)] or found
    return text(found[0]) if found else None


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, [], {})}


def _ubl_party(party: ET.Element | None) -> dict[str, Any]:
    if party is None:
        return {}
    tax_ids = [
        (text(scheme, "CompanyID"), text(scheme, "TaxScheme/ID")) for scheme in find_all(party, "PartyTaxScheme")
    ]
    return _compact({
        "name": first(party, "PartyName/Name", "PartyLegalEntity/RegistrationName"),
        "legal_name": text(party, "PartyLegalEntity/RegistrationName"),
        "ids": texts(party, "PartyIdentification/ID"),
        "legal_id": text(party, "PartyLegalEntity/CompanyID"),
        "vat_id": next((value for value, scheme in tax_ids if scheme == "VAT"), None),
        "tax_id": next((value for value, scheme in tax_ids if scheme != "VAT"), None),
        "endpoint_id": text(party, "EndpointID"),
        "email": text(party, "Contact/ElectronicMail"),
        "country": text(party, "PostalAddress/Country/IdentificationCode"),
    })


def _ubl(root: ET.Element) -> dict[str, Any]:
    document = local(root.tag)
    currency = text(root, "DocumentCurrencyCode")
    totals = find(root, "LegalMonetaryTotal")
    return {
        "syntax": "UBL",
        "document": document,
        "number": text(root, "ID"),
        "issue_date": iso_date(text(root, "IssueDate")),
        "due_date": iso_date(first(root, "DueDate", "PaymentMeans/PaymentDueDate")),
        "type_code": first(root, "InvoiceTypeCode", "CreditNoteTypeCode"),
        "currency": currency,
        "buyer_reference": text(root, "BuyerReference"),
        "order_reference": text(root, "OrderReference/ID"),
        "seller": _ubl_party(find(root, "AccountingSupplierParty/Party")),
        "buyer": _ubl_party(find(root, "AccountingCustomerParty/Party")),
        "totals": _compact({
            "line_total": _amount(totals, "LineExtensionAmount"),
            "net": _amount(totals, "TaxExclusiveAmount"),
            "tax": _amount(root, "TaxTotal/TaxAmount", currency),
            "gross": _amount(totals, "TaxInclusiveAmount"),
            "prepaid": _amount(totals, "PrepaidAmount"),
            "payable": _amount(totals, "PayableAmount"),
        }),
        "payment": _compact({
            "ibans": list(dict.fromkeys(texts(root, "PaymentMeans/PayeeFinancialAccount/ID"))),
            "reference": text(root, "PaymentMeans/PaymentID"),
        }),
        "lines": len(find_all(root, "InvoiceLine")) + len(find_all(root, "CreditNoteLine")),
        "attachments": [
            _compact({
                "id": text(ref, "ID"),
                "description": text(ref, "DocumentDescription"),
                "filename": attr(ref, "Attachment/EmbeddedDocumentBinaryObject", "filename"),
                "mime_code": attr(ref, "Attachment/EmbeddedDocumentBinaryObject", "mimeCode"),
                "embedded": find(ref, "Attachment/EmbeddedDocumentBinaryObject") is not None,
                "uri": text(ref, "Attachment/ExternalReference/URI"),
            })
            for ref in find_all(root, "AdditionalDocumentReference")
        ],
    }


def _cii_party(party: ET.Element | None) -> dict[str, Any]:
    if party is None:
        return {}
    registrations = [(text(r), r.get("schemeID")) for r in find_all(party, "SpecifiedTaxRegistration/ID")]
    return _compact({
        "name": text(party, "Name"),
        "legal_name": text(party, "SpecifiedLegalOrganization/TradingBusinessName"),
        "ids": texts(party, "ID") + texts(party, "GlobalID"),
        "legal_id": text(party, "SpecifiedLegalOrganization/ID"),
        "vat_id": next((value for value, scheme in registrations if scheme == "VA"), None),
        "tax_id": next((value for value, scheme in registrations if scheme != "VA"), None),
        "email": first(
            party, "URIUniversalCommunication/URIID", "DefinedTradeContact/EmailURIUniversalCommunication/URIID"
        ),
        "country": text(party, "PostalTradeAddress/CountryID"),
    })


def _cii_references(root: ET.Element) -> list[ET.Element]:
    """AdditionalReferencedDocument of the header agreement (and of lines, where some generators put them)."""
    return [e for e in root.iter() if isinstance(e.tag, str) and local(e.tag) == "AdditionalReferencedDocument"]


def _cii(root: ET.Element, name: str) -> dict[str, Any]:
    header = find_any(root, "ExchangedDocument", "HeaderExchangedDocument")
    trade = find_any(root, "SupplyChainTradeTransaction", "SpecifiedSupplyChainTradeTransaction")
    agreement = find_any(trade, "ApplicableHeaderTradeAgreement", "ApplicableSupplyChainTradeAgreement")
    settlement = find_any(trade, "ApplicableHeaderTradeSettlement", "ApplicableSupplyChainTradeSettlement")
    sums = find_any(
        settlement, "SpecifiedTradeSettlementHeaderMonetarySummation", "SpecifiedTradeSettlementMonetarySummation"
    )
    currency = text(settlement, "InvoiceCurrencyCode")
    type_code = text(header, "TypeCode")
    return {
        "syntax": name,
        "document": "CreditNote" if type_code in _CREDIT_TYPES else "Invoice",
        "number": text(header, "ID"),
        "issue_date": iso_date(text(header, "IssueDateTime/DateTimeString")),
        "due_date": iso_date(text(settlement, "SpecifiedTradePaymentTerms/DueDateDateTime/DateTimeString")),
        "type_code": type_code,
        "currency": currency,
        "buyer_reference": text(agreement, "BuyerReference"),
        "order_reference": text(agreement, "BuyerOrderReferencedDocument/IssuerAssignedID"),
        "seller": _cii_party(find(agreement, "SellerTradeParty")),
        "buyer": _cii_party(find(agreement, "BuyerTradeParty")),
        "totals": _compact({
            "line_total": _amount(sums, "LineTotalAmount"),
            "net": _amount(sums, "TaxBasisTotalAmount"),
            "tax": _amount(sums, "TaxTotalAmount", currency),
            "gross": _amount(sums, "GrandTotalAmount"),
            "prepaid": _amount(sums, "TotalPrepaidAmount"),
            "payable": _amount(sums, "DuePayableAmount"),
        }),
        "payment": _compact({
            "ibans": list(dict.fromkeys(
                texts(settlement, "SpecifiedTradeSettlementPaymentMeans/PayeePartyCreditorFinancialAccount/IBANID")
            )),
            "reference": text(settlement, "PaymentReference"),
        }),
        "lines": len(find_all(trade, "IncludedSupplyChainTradeLineItem")),
        "attachments": [
            _compact({
                "id": text(ref, "IssuerAssignedID"),
                "description": text(ref, "Name"),
                "filename": attr(ref, "AttachmentBinaryObject", "filename"),
                "mime_code": attr(ref, "AttachmentBinaryObject", "mimeCode"),
                "embedded": find(ref, "AttachmentBinaryObject") is not None,
                "uri": text(ref, "URIID"),
            })
            for ref in _cii_references(root)
        ],
    }


def invoice_fields(root: ET.Element) -> dict[str, Any] | None:
    """Number, dates, type, parties, totals, payment and attachments of an e-invoice; None if it is not one."""
    name = syntax(root)
    if name is None:
        return None
    return _ubl(root) if name == "UBL" else _cii(root, name)


def embedded_files(root: ET.Element) -> list[EmbeddedFile]:
    """The base64 attachments of an e-invoice, in document order (UBL and CII)."""
    name = syntax(root)
    if name is None:
        return []
    if name == "UBL":
        found = [
            (binary, ref) for ref in find_all(root, "AdditionalDocumentReference")
            if (binary := find(ref, "Attachment/EmbeddedDocumentBinaryObject")) is not None
        ]
        describe = "DocumentDescription"
    else:
        found = [
            (binary, ref) for ref in _cii_references(root)
            if (binary := find(ref, "AttachmentBinaryObject")) is not None
        ]
        describe = "Name"
    return [
        EmbeddedFile(
            payload=binary.text or "",
            filename=binary.get("filename") or text(ref, "ID") or text(ref, "IssuerAssignedID"),
            content_type=binary.get("mimeCode"),
            description=text(ref, describe),
        )
        for binary, ref in found
    ]
