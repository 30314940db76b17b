"""Issue 11: prospects meet the CRM import (casestore.prospects): the same email merges (cases
move, audit, prospect retired, idempotent on re-import); a phone match or a name that disagrees
waits for a person, who merges or dismisses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from casestore import cases, importer, prospects
from casestore.customers import find_customer, prospect_customer
from casestore.errors import Conflict, InvalidInput
from casestore.models import AuditEvent, Case, Customer, ProspectLink

HEADER = "customer_id,name,email,phone,address,postcode,account_number\n"


def _prospect(session: Session, key: str, *, name: str, email: str | None = None,
              phone: str | None = None) -> tuple[Customer, str]:
    customer, created = prospect_customer(session, key=key, name=name, email=email, phone=phone)
    assert created
    case = cases.open_case(session, customer_id=customer.customer_id, case_type="general", subject="first letter",
                           actor="pipeline", reason="new request")
    return customer, case.ref


def _import(session: Session, tmp_path: Path, rows: str) -> importer.ImportReport:
    path = tmp_path / "crm.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    report = importer.import_customers(session, path)
    assert report.errors == []
    return report


def _audit(session: Session, action: str) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0)


def test_same_email_merges_the_prospect_once(session: Session, tmp_path: Path) -> None:
    prospect, ref = _prospect(session, "aaaa1111bbbb2222", name="Jane Doe", email="Jane.Doe@Mail.example")
    report = _import(session, tmp_path, "C-100,Jane Doe,jane.doe@mail.example,,,,\n")
    assert report.prospects_merged == [prospect.customer_id] and report.prospects_to_review == []
    assert report.visibility_changed == [ref]  # the CLI re-indexes it: its documents name the customer
    case = session.scalar(select(Case).where(Case.ref == ref))
    assert case is not None and case.customer is not None and case.customer.customer_id == "C-100"
    session.refresh(prospect)
    crm = find_customer(session, customer_id="C-100")
    assert crm is not None and prospect.merged_into_id == crm.id
    assert prospect.email is None and prospect.phone_normalised is None  # no look-up finds it again
    merged = session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.merged")).all()
    assert {e.case_id for e in merged} == {case.id, None}
    assert merged[0].details["prospect_was"]["email"] == "jane.doe@mail.example"
    # the next mail from that address belongs to the CRM customer, not a new prospect
    again, created = prospect_customer(session, key="cccc", name="Jane Doe", email="jane.doe@mail.example")
    assert (again.customer_id, created) == ("C-100", False)
    # a re-import of the same file changes nothing
    second = _import(session, tmp_path, "C-100,Jane Doe,jane.doe@mail.example,,,,\n")
    assert second.prospects_merged == [] and second.visibility_changed == []
    assert _audit(session, "customer.merged") == 2


def test_a_prospect_with_a_title_or_no_name_still_merges(session: Session, tmp_path: Path) -> None:
    titled, _ = _prospect(session, "dddd", name="Mrs Jane Doe", email="jane@mail.example")
    unnamed, _ = _prospect(session, "eeee", name="ann@mail.example", email="ann@mail.example")
    report = _import(session, tmp_path, "C-1,Jane Doe,jane@mail.example,,,,\nC-2,Ann Lee,ann@mail.example,,,,\n")
    assert report.prospects_merged == [titled.customer_id, unnamed.customer_id]


def test_phone_only_or_another_name_waits_for_a_person(session: Session, tmp_path: Path) -> None:
    by_phone, phone_ref = _prospect(session, "ffff", name="Sam Poe", phone="07911 123456")
    shared, shared_ref = _prospect(session, "9999", name="Tom Doe", email="doe.family@mail.example")
    rows = "C-7,Samuel Poe,sam@work.example,07911 123 456,,,\nC-8,Jane Doe,doe.family@mail.example,,,,\n"
    report = _import(session, tmp_path, rows)
    assert report.prospects_merged == []
    assert report.prospects_to_review == [by_phone.customer_id, shared.customer_id]
    assert _import(session, tmp_path, rows).prospects_to_review == []  # linked once
    assert session.scalar(select(func.count()).select_from(ProspectLink)) == 2
    found = {(r.prospect_id, r.customer_id, r.matched_on, tuple(r.cases)) for r in prospects.open_reviews(session)}
    assert found == {(by_phone.customer_id, "C-7", "phone", (phone_ref,)),
                     (shared.customer_id, "C-8", "email_name_differs", (shared_ref,))}
    one = prospects.open_reviews(session, prospect_id=shared.customer_id, customer_id="C-8")
    assert [(r.prospect_id, r.cases) for r in one] == [(shared.customer_id, [shared_ref])]
    assert prospects.open_reviews(session, prospect_id=shared.customer_id, customer_id="C-7") == []
    # a person decides: Sam is C-7; Tom is not Jane
    assert prospects.merge_prospect(session, prospect_id=by_phone.customer_id, customer_id="C-7",
                                    actor="sue") == [phone_ref]
    prospects.dismiss_link(session, prospect_id=shared.customer_id, customer_id="C-8", actor="sue")
    assert prospects.open_reviews(session) == []
    moved = session.scalar(select(Case).where(Case.ref == phone_ref))
    kept = session.scalar(select(Case).where(Case.ref == shared_ref))
    assert moved is not None and moved.customer is not None and moved.customer.customer_id == "C-7"
    assert kept is not None and kept.customer is not None and kept.customer.customer_id == shared.customer_id
    assert _import(session, tmp_path, rows).prospects_to_review == []  # dismissed stays dismissed
    with pytest.raises(Conflict):
        prospects.dismiss_link(session, prospect_id=shared.customer_id, customer_id="C-8", actor="sue")
    assert prospects.merge_prospect(session, prospect_id=by_phone.customer_id, customer_id="C-7", actor="sue") == []
    with pytest.raises(Conflict):
        prospects.merge_prospect(session, prospect_id=by_phone.customer_id, customer_id="C-8", actor="sue")
    with pytest.raises(InvalidInput):
        prospects.merge_prospect(session, prospect_id="C-7", customer_id="C-8", actor="sue")


def test_cli_import_merges_and_reindexes_the_moved_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api import cli, customer_cli
    from api.settings import get_settings
    from api.wiring import open_runtime
    from casestore import items
    from casestore.search.indexer import index_items
    from casestore.search.port import SearchQuery, Viewer
    from tests.casestore.factories import decision, documents, new_item

    monkeypatch.setenv("CASEWORK_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        rt = open_runtime(get_settings())
        item = new_item()
        with rt.sessions() as session, session.begin():
            prospect, ref = _prospect(session, "1234abcd", name="Jane Doe", email="jane@mail.example")
            items.file_item(session, item=item, documents=documents(1), outcome="attached", case_ref=ref,
                            new_case=None, doc_type="letter", decision=decision(), actor="test")
        with rt.sessions() as session:
            index_items(session, rt.search_index, [item.item_id])
        rt.close()
        crm = tmp_path / "crm.csv"
        crm.write_text(HEADER + "C-100,Jane Doe,jane@mail.example,,,,\n", encoding="utf-8")
        app = typer.Typer()
        app.add_typer(cli.import_app, name="import")
        customer_cli.register(app)
        runner = CliRunner()
        done = runner.invoke(app, ["import", "customers", str(crm), "--json"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["prospects_merged"] == [prospect.customer_id]
        rt = open_runtime(get_settings())
        hits = rt.search_index.search(SearchQuery(customer_id="C-100"), Viewer(role="admin")).hits
        assert [h.case_ref for h in hits] == [ref]
        rt.close()
        listed = runner.invoke(app, ["customer", "reviews", "--json"])
        assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    finally:
        get_settings.cache_clear()


def test_a_number_written_internationally_meets_its_national_form(session: Session, tmp_path: Path) -> None:
    """An SMS arrives from +44 7911 123456; the CRM has 07911 123456: the same line, a review."""
    by_sms, ref = _prospect(session, "abab", name="", phone="+44 7911 123456")
    other, _ = _prospect(session, "cdcd", name="", phone="+1 202 555 0143")  # the same digits abroad are not
    report = _import(session, tmp_path, "C-9,Sam Poe,,07911 123456,,,\nC-10,Ann Lee,,0044 (0)7911 123456,,,\n")
    assert report.prospects_merged == []
    assert report.prospects_to_review == [by_sms.customer_id, by_sms.customer_id]
    found = {(r.prospect_id, r.customer_id, r.matched_on) for r in prospects.open_reviews(session)}
    assert found == {(by_sms.customer_id, "C-9", "phone"), (by_sms.customer_id, "C-10", "phone")}
    assert other.customer_id not in {r.prospect_id for r in prospects.open_reviews(session)}
    # a number in another region: written nationally it is a different number
    us_report = importer.import_customers(session, _csv(tmp_path, "C-11,Jo Bloggs,,2025550143,,,\n"))
    assert us_report.prospects_to_review == []
    us_report = importer.import_customers(session, _csv(tmp_path, "C-12,Jo Bloggs,,2025550143,,,\n"),
                                          phone_region="US")
    assert us_report.prospects_to_review == [other.customer_id]
    assert ref


def _csv(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "crm2.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path
