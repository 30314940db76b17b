from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.cases import get_case
from casestore.customers import get_customer
from casestore.errors import InvalidInput
from casestore.importer import RowError, import_cases, import_customers
from casestore.models import AuditEvent, Case, Customer

CUSTOMERS_CSV = (
    "customer_id,name,email,phone,address,postcode,account_number\n"
    "C-1,Jane Doe,Jane@Example.com,+44 20 7946 0000,\"1 High St\nLondon\",SW1A 1AA,ACC-1\n"  # lines 2-3
    "C-2,John Roe,john@example.com,,,,ACC-2\n"
    ",Nameless,x@example.com,,,,\n"  # line 5: no customer_id
    "C-3,Bad Mail,not-an-email,,,,\n"  # line 6
    "\n"
    "C-4,Ann Other,ann@example.com,,,EC1A 1BB,\n"  # line 8
)


def _write(tmp_path: Path, name: str, content: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_customers_csv_good_and_bad_rows(session: Session, tmp_path: Path) -> None:
    report = import_customers(session, _write(tmp_path, "customers.csv", "\ufeff" + CUSTOMERS_CSV))
    assert (report.created, report.updated) == (3, 0)
    assert [e.line for e in report.errors] == [5, 6]
    assert "customer_id is required" in report.errors[0].reason
    assert "not an address" in report.errors[1].reason
    jane = get_customer(session, customer_id="C-1")
    assert jane.email == "jane@example.com" and jane.address == "1 High St\nLondon"
    assert jane.postcode_normalised == "SW1A1AA" and jane.phone_normalised == "+442079460000"
    assert _count(session, Customer) == 3
    summary = session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.imported")).one()
    assert summary.details["created"] == 3 and summary.details["errors"] == 2


def test_customers_reimport_updates(session: Session, tmp_path: Path) -> None:
    import_customers(session, _write(tmp_path, "a.csv", CUSTOMERS_CSV))
    changed = "customer_id,name,email\nC-1,Jane Smith,jane.smith@example.com\nC-9,New One,\n"
    report = import_customers(session, _write(tmp_path, "b.csv", changed))
    assert (report.created, report.updated, report.errors) == (1, 1, [])
    assert get_customer(session, customer_id="C-1").name == "Jane Smith"
    assert _count(session, Customer) == 4


def test_customers_jsonl(session: Session, tmp_path: Path) -> None:
    lines = [
        json.dumps({"customer_id": "C-1", "name": "Jane", "account_number": 12345}),
        "",
        "{not json",
        json.dumps(["C-2", "John"]),
        json.dumps({"customer_id": "C-3", "name": "Nested", "email": {"a": 1}}),
        json.dumps({"Customer ID": "C-4", "Name": "Key Case"}),
    ]
    report = import_customers(session, _write(tmp_path, "customers.ndjson", "\n".join(lines) + "\n"))
    assert (report.created, report.updated) == (2, 0)
    assert [e.line for e in report.errors] == [3, 4, 5]
    assert report.errors[0].reason.startswith("invalid JSON")
    assert "one JSON object per line" in report.errors[1].reason
    assert "must be text or a number" in report.errors[2].reason
    assert get_customer(session, customer_id="C-1").account_number == "12345"
    assert get_customer(session, customer_id="C-4").name == "Key Case"


def test_format_is_sniffed_without_a_known_extension(session: Session, tmp_path: Path) -> None:
    jsonl = _write(tmp_path, "export.txt", "  " + json.dumps({"customer_id": "C-1", "name": "Jane"}) + "\n")
    assert import_customers(session, jsonl).created == 1
    csv = _write(tmp_path, "export.dat", "customer_id,name\nC-2,John\n")
    assert import_customers(session, csv).created == 1


def test_whole_file_problems(session: Session, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no column customer_id"):
        import_customers(session, _write(tmp_path, "a.csv", "id,name\n1,Jane\n"))
    with pytest.raises(InvalidInput, match="JSON array"):
        import_customers(session, _write(tmp_path, "a.json", '[{"customer_id": "C-1"}]'))
    with pytest.raises(InvalidInput, match="empty"):
        import_customers(session, _write(tmp_path, "e.csv", ""))
    with pytest.raises(InvalidInput, match="cannot read"):
        import_customers(session, tmp_path / "missing.csv")


def test_lines_that_are_not_utf8_are_reported(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"customer_id,name\nC-1,Jane\nC-2,Ren\xe9e\nC-3,Ann\n")
    report = import_customers(session, path)
    assert report.created == 2 and report.errors == [RowError(3, report.errors[0].reason)]
    assert "not valid UTF-8" in report.errors[0].reason


CASES_CSV = (
    "ref,customer_id,case_type,status,opened_at,subject,team\n"
    "OLD-1,C-1,billing,open,2019-05-04,Refund,billing\n"
    "OLD-2,C-1,repairs,closed,2020-01-02T10:00:00Z,Boiler,\n"
    "OLD-3,C-404,repairs,open,,Unknown person,\n"  # line 4
    "OLD-4,C-1,repairs,finished,,Bad status,\n"  # line 5
    "OLD-5,C-1,repairs,open,04/05/2019,Bad date,\n"  # line 6
    ",C-1,repairs,open,,No ref,\n"  # line 7
    "OLD-6,,general,,,No customer,\n"
)


def test_cases_csv_good_and_bad_rows_then_reimport(session: Session, tmp_path: Path) -> None:
    import_customers(session, _write(tmp_path, "c.csv", "customer_id,name\nC-1,Jane\n"))
    report = import_cases(session, _write(tmp_path, "cases.csv", CASES_CSV))
    assert (report.created, report.updated) == (3, 0)
    assert [e.line for e in report.errors] == [4, 5, 6, 7]
    reasons = [e.reason for e in report.errors]
    assert "import customers first" in reasons[0]
    assert "open, pending, closed" in reasons[1]
    assert "ISO 8601" in reasons[2]
    assert "ref is required" in reasons[3]
    old1 = get_case(session, ref="OLD-1")
    assert old1.legacy and old1.team == "billing" and old1.opened_at == datetime(2019, 5, 4, tzinfo=UTC)
    assert get_case(session, ref="OLD-2").status == "closed"
    assert get_case(session, ref="OLD-6").customer is None and get_case(session, ref="OLD-6").status == "open"
    imported = session.scalars(select(AuditEvent.action).where(AuditEvent.action == "case.imported")).all()
    assert len(imported) == 3

    again = import_cases(session, _write(tmp_path, "cases2.csv",
                                         "ref,customer_id,case_type,status\nOLD-1,C-1,billing,closed\n"))
    assert (again.created, again.updated, again.errors) == (0, 1, [])
    assert get_case(session, ref="OLD-1").status == "closed"
    assert _count(session, Case) == 3


def test_cases_jsonl(session: Session, tmp_path: Path) -> None:
    rows = [{"ref": "J-1", "case_type": "billing", "opened_at": "2021-02-03T04:05:06+01:00"},
            {"ref": "J-2", "case_type": "billing", "customer_id": None, "status": "pending"}]
    report = import_cases(session, _write(tmp_path, "cases.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert (report.created, report.errors) == (2, [])
    assert get_case(session, ref="J-1").opened_at == datetime(2021, 2, 3, 3, 5, 6, tzinfo=UTC)
