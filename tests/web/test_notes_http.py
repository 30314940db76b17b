"""The case page's note form goes through the same service and permission check as
``POST /api/v1/cases/{ref}/notes``: the case type's ``add_note`` action, and the access rule.

The module registers its own case type, ``sealed`` (the shipped ``general`` with agents allowed
only ``work_task``), and starts a case of it for team complaints, whose agent is alice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from casestore import cases
from casestore.models import Note
from casestore.work import engine
from casestore.work.actor import SYSTEM
from casestore.work.loader import load_case_type_file
from casestore.work.registry import register
from casestore.work.setup import FALLBACK_TYPE
from tests.web.conftest import COMPLAINT, Workbench
from tests.web.test_work_pages_http import signed_in

pytestmark = pytest.mark.timeout(120)
SEALED = "CM-2026-000901"
SHIPPED = Path(engine.__file__).resolve().parent / "shipped" / "case_types"


@pytest.fixture(scope="module", autouse=True)
def sealed_case(workbench: Workbench, tmp_path_factory: pytest.TempPathFactory) -> None:
    text = (SHIPPED / f"{FALLBACK_TYPE}.yaml").read_text()
    text = text.replace("name: general\n", "name: sealed\n", 1)
    text = text.replace("  agent: [work_task, add_note, set_status, close_case]", "  agent: [work_task]", 1)
    assert "name: sealed" in text and "agent: [work_task]\n" in text
    path = tmp_path_factory.mktemp("sealed") / "sealed.yaml"
    path.write_text(text)
    loaded = load_case_type_file(path, calendars=workbench.rt.calendars)
    with workbench.rt.sessions() as s, s.begin():
        register(s, loaded)
        case, _ = cases.upsert_case(s, ref=SEALED, customer_id="C1", case_type="sealed", status="open",
                                    opened_at=None, subject="a sealed case", team="complaints")
        engine.start_case(s, case=case, case_type=loaded.case_type, actor=SYSTEM, calendars=workbench.rt.calendars)


def _notes(wb: Workbench, ref: str) -> list[str]:
    with wb.rt.read_sessions() as s:
        case = cases.get_case(s, ref=ref)
        return list(s.scalars(select(Note.body).where(Note.case_id == case.id).order_by(Note.id)))


def test_the_note_form_is_refused_where_the_case_type_does_not_let_the_role_add_notes(workbench: Workbench) -> None:
    with signed_in(workbench, "alice") as (client, csrf):
        r = client.post(f"/cases/{SEALED}/notes", data={"body": "an agent's note", "csrf_token": csrf})
        assert r.status_code == 403, r.text
        assert "add_note" in r.text or "may not" in r.text
        api = client.post(f"/api/v1/cases/{SEALED}/notes", json={"body": "an agent's note"})
        assert api.status_code == 403  # the REST API says the same
    assert _notes(workbench, SEALED) == []
    with signed_in(workbench, "sue") as (client, csrf):  # the supervisor's role may
        r = client.post(f"/cases/{SEALED}/notes", data={"body": "a supervisor's note", "csrf_token": csrf})
        assert r.status_code == 303
    assert _notes(workbench, SEALED) == ["a supervisor's note"]


def test_the_note_form_keeps_its_other_answers(workbench: Workbench) -> None:
    with signed_in(workbench, "bob") as (client, csrf):  # another team: as if there were no such case
        assert client.post(f"/cases/{COMPLAINT}/notes", data={"body": "x", "csrf_token": csrf}).status_code == 404
    with signed_in(workbench, "alice") as (client, csrf):
        assert client.post(f"/cases/{COMPLAINT}/notes", data={"body": "", "csrf_token": csrf}).status_code == 422
        r = client.post(f"/cases/{COMPLAINT}/notes", data={"body": "called her back", "csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"].startswith(f"/cases/{COMPLAINT}")
    assert "called her back" in _notes(workbench, COMPLAINT)
