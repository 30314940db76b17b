"""The notifications page and the header's count over plain HTTP against the running server: a
complaint's breach reaches its team's supervisor (escaped), not another team's; the read mark is
posted with the form's CSRF token (SQLite store)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api.settings import Settings, WebSettings
from api.wiring import open_runtime
from casestore import cases, customers, users
from casestore.models import utcnow
from casestore.signin.passwords import set_password
from casestore.work import engine
from casestore.work.actor import SYSTEM
from casestore.work.clock_loop import sweep
from casestore.work.inbound import start_imported
from casestore.work.models import WorkTask
from tests.web.conftest import PASSWORD, Workbench, serve_app
from tests.web.test_work_pages_http import signed_in

pytestmark = pytest.mark.timeout(120)
REF = "CM-2026-000042"
ENQUIRY = "CM-2026-000043"  # a general enquiry reclassified: every stage done, no rule closes it
HOSTILE = "<script>alert(1)</script> noise"


@pytest.fixture(scope="module")
def wb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    rt = open_runtime(Settings(data_dir=Path(tmp_path_factory.mktemp("notices")) / "data",
                               web=WebSettings(queue_counts_max_age_s=0)))
    setup = rt.work
    with rt.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com")
        case, _ = cases.upsert_case(s, ref=REF, customer_id="C1", case_type="complaint", status="open",
                                    opened_at=None, subject=HOSTILE, team="complaints")
        start_imported(s, case=case, setup=setup)
        enquiry, _ = cases.upsert_case(s, ref=ENQUIRY, customer_id="C1", case_type="general", status="open",
                                       opened_at=None, subject="which form?", team="complaints")
        start_imported(s, case=enquiry, setup=setup)
        review = s.scalars(select(WorkTask).where(WorkTask.case_id == enquiry.id)).one()
        engine.tick(s, task_id=review.id, item="read_all", actor=SYSTEM, calendars=rt.calendars)
        engine.complete_task(s, task_id=review.id, code="reclassify", actor=SYSTEM, calendars=rt.calendars)
        for name, role, teams in (("cat", "supervisor", ["complaints"]), ("sam", "supervisor", ["claims"]),
                                  ("alice", "agent", ["complaints"])):
            users.add_user(s, name=name, role=role, teams=teams)
            set_password(s, name=name, password=PASSWORD)
    with rt.sessions() as s, s.begin():
        assert sweep(s, now=utcnow() + timedelta(days=30)).breached >= 1
    url, stop = serve_app(rt)
    yield Workbench(url=url, rt=rt, robot={})
    stop()
    rt.close()


def test_the_page_needs_a_session(wb: Workbench) -> None:
    r = httpx.get(wb.url + "/notifications", timeout=30)
    assert r.status_code in (302, 303, 307) and "/login" in r.headers["location"]
    assert httpx.post(wb.url + "/notifications/seen", timeout=30).status_code in (302, 303, 307, 403)


def test_the_teams_supervisor_sees_the_breach_escaped_and_marks_it_read(wb: Workbench) -> None:
    with signed_in(wb, "cat") as (client, csrf):
        start = client.get("/").text
        badge = re.search(r'href="/notifications"[^>]*>Notifications <span class="badge">(\d+)'
                          r'<span class="visually-hidden"> unread', start)
        assert badge and int(badge.group(1)) >= 1, "the header counts the unread notices"
        page = client.get("/notifications").text
        assert REF in page and "Acknowledge within 4 business hours is breached" in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; noise" in page and HOSTILE not in page
        assert "<strong>unread</strong>" in page
        up_to = re.search(r'name="up_to" value="(\d+)"', page)
        assert up_to
        del client.headers["X-CSRF-Token"]
        refused = client.post("/notifications/seen", data={"up_to": up_to.group(1)})
        assert refused.status_code == 403
        done = client.post("/notifications/seen", data={"up_to": up_to.group(1), "csrf_token": csrf})
        assert done.status_code == 303 and done.headers["location"] == "/notifications?done=notices_seen"
        after = client.get("/notifications?done=notices_seen").text
        assert "marked as read" in after and "<strong>unread</strong>" not in after and " 0 unread." in after
        assert 'class="badge"' not in client.get("/").text.split("</nav>")[0]


def test_another_teams_supervisor_and_an_agent_are_not_told(wb: Workbench) -> None:
    for name in ("sam", "alice"):
        with signed_in(wb, name) as (client, _):
            page = client.get("/notifications").text
            assert REF not in page and "No notifications" in page


def test_a_case_ready_to_close_is_on_the_dashboard_and_in_its_case_list(wb: Workbench) -> None:
    with signed_in(wb, "cat") as (client, _):
        dashboard = client.get("/supervisor").text
        assert re.search(r'<a href="/cases\?status=ready_to_close">1 case ready to close</a>', dashboard)
        listed = client.get("/cases", params={"status": "ready_to_close"}).text
        assert ENQUIRY in listed and REF not in listed
        assert '<option value="ready_to_close" selected>ready to close</option>' in listed
        case_page = client.get(f"/cases/{ENQUIRY}").text
        assert "every stage done: ready to close with a code" in case_page
