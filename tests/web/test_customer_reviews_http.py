"""Prospect reviews in the workbench (``/customers/reviews``): a supervisor merges a prospect into
the CRM customer a phone number matched (with a reason, in the case's audit trail) or dismisses the
match; agents may not; the supervisor dashboard says how many wait.  Over plain HTTP against a
server of its own (the shared workbench's cases are left alone)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.settings import Settings
from api.wiring import open_runtime
from casestore import cases, importer
from casestore.customers import prospect_customer
from casestore.models import AuditEvent, Case, ProspectLink
from tests.web.conftest import Workbench, _seed_store, serve_app
from tests.web.test_work_pages_http import signed_in

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def reviews_wb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    root = tmp_path_factory.mktemp("reviews")
    rt = open_runtime(Settings(data_dir=root / "data"))
    robot = _seed_store(rt)
    with rt.sessions() as s, s.begin():
        refs = []
        for key, phone in (("aaaa", "+44 7911 123456"), ("bbbb", "+44 7911 654321")):
            prospect, _ = prospect_customer(s, key=key, name="", phone=phone)
            refs.append(cases.open_case(s, customer_id=prospect.customer_id, case_type="general",
                                        subject="a letter", actor="pipeline", reason="new request").ref)
        crm = root / "crm.csv"
        crm.write_text("customer_id,name,email,phone,address,postcode,account_number\n"
                       "C-50,Sam Poe,,07911 123456,,,\nC-51,Ann Lee,,07911 654321,,,\n", encoding="utf-8")
        assert len(importer.import_customers(s, crm).prospects_to_review) == 2
    url, stop = serve_app(rt)
    wb = Workbench(url=url, rt=rt, robot=robot)
    wb.items.update({"first": refs[0], "second": refs[1]})
    yield wb
    stop()
    rt.close()


def _alert(page: str) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]*)', page)
    return found.group(1) if found else ""


def test_agents_may_not_decide(reviews_wb: Workbench) -> None:
    with signed_in(reviews_wb, "alice") as (client, _):
        assert client.get("/customers/reviews").status_code == 403
        r = client.post("/customers/reviews/merge", data={"prospect": "P-aaaa", "customer": "C-50", "reason": "x"})
        assert r.status_code == 403
    with reviews_wb.rt.read_sessions() as s:
        assert {link.state for link in s.scalars(select(ProspectLink))} == {"review"}


def test_a_supervisor_merges_one_and_dismisses_the_other(reviews_wb: Workbench, tmp_path: Path) -> None:
    first, second = reviews_wb.items["first"], reviews_wb.items["second"]
    with signed_in(reviews_wb, "sue") as (client, _):
        assert "2 prospects may be a CRM customer" in client.get("/supervisor").text
        page = client.get("/customers/reviews").text
        assert first in page and second in page and "C-50" in page and "phone" in page
        prospect = re.search(r"<code>(P-[^<]+)</code></td>\s*<td>[^<]*</td>\s*<td><code>C-50</code>", page)
        other = re.search(r"<code>(P-[^<]+)</code></td>\s*<td>[^<]*</td>\s*<td><code>C-51</code>", page)
        assert prospect and other
        no_reason = client.post("/customers/reviews/merge", data={"prospect": prospect.group(1), "customer": "C-50",
                                                                  "reason": " "})
        assert no_reason.status_code == 422 and "Give a reason" in _alert(no_reason.text)
        wrong_pair = client.post("/customers/reviews/merge", data={"prospect": prospect.group(1), "customer": "C-51",
                                                                   "reason": "same person"})
        assert wrong_pair.status_code == 409, "only a pair under review is decided here"
        r = client.post("/customers/reviews/merge", data={"prospect": prospect.group(1), "customer": "C-50",
                                                          "reason": "rang her back on both numbers"})
        assert r.status_code == 303 and r.headers["location"] == "/customers/reviews?done=prospect_merged"
        r = client.post("/customers/reviews/dismiss", data={"prospect": other.group(1), "customer": "C-51"})
        assert r.status_code == 303
        again = client.post("/customers/reviews/dismiss", data={"prospect": other.group(1), "customer": "C-51"})
        assert again.status_code == 409
        assert "Nothing to review." in client.get("/customers/reviews").text
        assert "may be a CRM customer" not in client.get("/supervisor").text
    with reviews_wb.rt.read_sessions() as s:
        moved = s.scalar(select(Case).where(Case.ref == first))
        kept = s.scalar(select(Case).where(Case.ref == second))
        assert moved is not None and moved.customer is not None and moved.customer.customer_id == "C-50"
        assert kept is not None and kept.customer is not None and kept.customer.customer_id == other.group(1)
        merged = s.scalars(select(AuditEvent).where(AuditEvent.action == "customer.merged",
                                                    AuditEvent.case_id == moved.id)).one()
        assert merged.actor == "sue" and "rang her back on both numbers" in merged.reason
        dismissed = select(AuditEvent.actor).where(AuditEvent.action == "customer.match_dismissed")
        assert s.scalars(dismissed).all() == ["sue"]
