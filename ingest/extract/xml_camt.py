"""ISO 20022 bank statements: camt.053 (statement), camt.052 (account report), camt.054 (debit/credit notice).

``statement_fields`` gives, per statement: the account, its balances and its entries with amount,
currency, credit/debit, booking and value dates and the references a payment is matched by
(EndToEndId, AcctSvcrRef, remittance information). Amounts are kept as written (decimal strings).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ingest.extract.xml_paths import attr, find_all, first, iso_date, local, namespace, text, texts

CAMT_PREFIX = "urn:iso:std:iso:20022:tech:xsd:camt.05"
# message element -> the element that holds one statement, report or notification
_MESSAGES = {"BkToCstmrStmt": "Stmt", "BkToCstmrAcctRpt": "Rpt", "BkToCstmrDbtCdtNtfctn": "Ntfctn"}
MAX_ENTRIES = 10_000  # per message; the rest is counted, not listed


def message_type(root: ET.Element) -> str | None:
    """'camt.053.001.02' and the like when ``root`` is a camt Document, else None."""
    ns = namespace(root.tag) or ""
    if local(root.tag) == "Document" and ns.startswith(CAMT_PREFIX):
        return ns.rsplit(":", 1)[-1]
    return None


def _date(element: ET.Element | None, path: str) -> str | None:
    return iso_date(first(element, f"{path}/Dt", f"{path}/DtTm"))


def _money(element: ET.Element | None, path: str = "Amt") -> tuple[str | None, str | None]:
    return text(element, path), attr(element, path, "Ccy")


def _remittance(element: ET.Element | None) -> list[str]:
    info = texts(element, "RmtInf/Ustrd")
    for structured in find_all(element, "RmtInf/Strd"):
        info += texts(structured, "CdtrRefInf/Ref") + texts(structured, "AddtlRmtInf")
    return info


def _transaction(tx: ET.Element) -> dict[str, Any]:
    amount, currency = _money(tx, "Amt")
    if amount is None:
        amount, currency = _money(tx, "AmtDtls/TxAmt/Amt")
    values = {
        "end_to_end_id": text(tx, "Refs/EndToEndId"),
        "instruction_id": text(tx, "Refs/InstrId"),
        "account_servicer_ref": text(tx, "Refs/AcctSvcrRef"),
        "amount": amount,
        "currency": currency,
        "credit_debit": text(tx, "CdtDbtInd"),
        "debtor": first(tx, "RltdPties/Dbtr/Nm", "RltdPties/Dbtr/Pty/Nm"),
        "debtor_iban": text(tx, "RltdPties/DbtrAcct/Id/IBAN"),
        "creditor": first(tx, "RltdPties/Cdtr/Nm", "RltdPties/Cdtr/Pty/Nm"),
        "creditor_iban": text(tx, "RltdPties/CdtrAcct/Id/IBAN"),
        "remittance": _remittance(tx),
    }
    return {k: v for k, v in values.items() if v not in (None, [])}


def _entry(entry: ET.Element) -> dict[str, Any]:
    amount, currency = _money(entry)
    transactions = [_transaction(tx) for tx in find_all(entry, "NtryDtls/TxDtls")]
    references = [t["end_to_end_id"] for t in transactions if "end_to_end_id" in t]
    return {
        "amount": amount,
        "currency": currency,
        "credit_debit": text(entry, "CdtDbtInd"),
        "reversal": text(entry, "RvslInd") == "true",
        "status": first(entry, "Sts/Cd", "Sts"),
        "booking_date": _date(entry, "BookgDt"),
        "value_date": _date(entry, "ValDt"),
        "account_servicer_ref": text(entry, "AcctSvcrRef"),
        "end_to_end_ids": list(dict.fromkeys(r for r in references if r != "NOTPROVIDED")),
        "remittance": list(dict.fromkeys(r for t in transactions for r in t.get("remittance", []))),
        "additional_info": text(entry, "AddtlNtryInf"),
        "transactions": transactions,
    }


def _balance(balance: ET.Element) -> dict[str, Any]:
    amount, currency = _money(balance)
    return {
        "type": first(balance, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry"),
        "amount": amount,
        "currency": currency,
        "credit_debit": text(balance, "CdtDbtInd"),
        "date": _date(balance, "Dt"),
    }


def _statement(element: ET.Element, room: int) -> dict[str, Any]:
    """One statement, report or notification, listing at most ``room`` of its entries."""
    entries = find_all(element, "Ntry")
    return {
        "id": text(element, "Id"),
        "created": text(element, "CreDtTm"),
        "from": text(element, "FrToDt/FrDtTm"),
        "to": text(element, "FrToDt/ToDtTm"),
        "account_iban": text(element, "Acct/Id/IBAN"),
        "account_id": text(element, "Acct/Id/Othr/Id"),
        "account_currency": text(element, "Acct/Ccy"),
        "account_owner": first(element, "Acct/Ownr/Nm", "Acct/Ownr/Pty/Nm"),
        "servicer_bic": first(element, "Acct/Svcr/FinInstnId/BICFI", "Acct/Svcr/FinInstnId/BIC"),
        "balances": [_balance(b) for b in find_all(element, "Bal")],
        "entry_count": len(entries),
        "entries": [_entry(e) for e in entries[:room]],
    }


def statement_fields(root: ET.Element) -> tuple[dict[str, Any] | None, list[str]]:
    """The statements of a camt message and warnings about it; (None, []) if ``root`` is not camt."""
    kind = message_type(root)
    if kind is None:
        return None, []
    warnings: list[str] = []
    message = next((child for child in root if isinstance(child.tag, str) and local(child.tag) in _MESSAGES), None)
    holder = _MESSAGES.get(local(message.tag), "Stmt") if message is not None else "Stmt"
    statements: list[dict[str, Any]] = []
    for element in find_all(message, holder):
        listed = sum(len(s["entries"]) for s in statements)
        statements.append(_statement(element, MAX_ENTRIES - listed))
    if message is None:
        warnings.append(f"{kind} message has no known message element ({', '.join(_MESSAGES)}); nothing to book")
    elif not statements:
        msg_id = text(message, "GrpHdr/MsgId")
        warnings.append(f"{kind} message{f' {msg_id}' if msg_id else ''} holds no statement "
                        f"({holder} element); nothing to book")
    if sum(s["entry_count"] for s in statements) > MAX_ENTRIES:
        warnings.append(f"{kind}: only the first {MAX_ENTRIES:,} entries are listed in the fields; the text has all")
    fields = {
        "message": kind,
        "message_id": text(message, "GrpHdr/MsgId"),
        "created": text(message, "GrpHdr/CreDtTm"),
        "statement_element": holder,
        "statements": statements,
    }
    return fields, warnings
