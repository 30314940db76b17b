"""Administration and operations pages over plain HTTP against the running server: users (add,
role and teams, password, disable), API tokens (shown once, revoked), case types (the folder's
files, a broken folder checked), calendars, and a single dead letter replayed or discarded."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from casestore import users
from casestore.models import AuditEvent, ItemFailure
from casestore.work.catalogue import check_folder
from casestore.work.loader import SHIPPED_DIR
from tests.web.conftest import Workbench
from tests.web.test_work_pages_http import signed_in

pytestmark = pytest.mark.timeout(120)
BROKEN_PDF = b"%PDF-1.4\n% not really a pdf\n%%EOF\n"


def _alert(page: str) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]*)', page)
    return found.group(1) if found else ""


def test_admin_pages_are_for_admins_only(workbench: Workbench) -> None:
    for who in ("sue", "alice"):
        with signed_in(workbench, who) as (client, _):
            for path in ("/admin/users", "/admin/tokens", "/admin/case-types", "/admin/calendars"):
                assert client.get(path).status_code == 403, (who, path)
            assert client.post("/admin/users", data={"name": "mallory", "role": "admin"}).status_code == 403
    with workbench.rt.read_sessions() as s:
        assert "mallory" not in [u.name for u in users.list_users(s)]


def test_users_are_added_changed_given_a_password_and_disabled(workbench: Workbench) -> None:
    with signed_in(workbench, "ada") as (client, _):
        r = client.post("/admin/users", data={"name": "frank", "role": "agent", "teams": "claims, complaints"})
        assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=user_added"
        again = client.post("/admin/users", data={"name": "frank", "role": "agent", "teams": ""})
        assert again.status_code == 409 and "exists already" in _alert(again.text)
        assert 'value="frank"' in again.text, "the form keeps what was typed"
        r = client.post("/admin/users/frank/change", data={"role": "supervisor", "teams": "claims"})
        assert r.status_code == 303
        short = client.post("/admin/users/frank/password", data={"password": "short"})
        assert short.status_code == 422 and "use at least 10" in _alert(short.text)
        assert client.post("/admin/users/frank/password", data={"password": "frank's new password"}).status_code == 303
        myself = client.post("/admin/users/ada/disable")
        assert myself.status_code == 409 and "you may not disable yourself" in _alert(myself.text)
        demote = client.post("/admin/users/ada/change", data={"role": "agent", "teams": ""})
        assert demote.status_code == 409 and "your own role" in _alert(demote.text)
        page = client.get("/admin/users").text
        listed = '<th scope="row">frank</th><td>supervisor</td><td>claims</td><td>set</td><td>active</td>'
        assert listed in page, "frank is listed as changed, with a password"
    with httpx.Client(base_url=workbench.url) as anonymous:
        form = anonymous.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        r = anonymous.post("/login", data={"name": "frank", "password": "frank's new password", "login_token": token})
        assert r.status_code == 303, "frank signs in with the password the admin set"
        assert anonymous.get("/supervisor").status_code == 200, "as the supervisor he now is"
        with signed_in(workbench, "ada") as (client, _):
            assert client.post("/admin/users/frank/disable").status_code == 303
        assert anonymous.get("/").status_code == 303, "disabled: his session ends at once"


def test_a_token_is_shown_once_and_revoked(workbench: Workbench) -> None:
    with signed_in(workbench, "ada") as (client, _):
        r = client.post("/admin/tokens", data={"user": "robot", "expires_in": "30d", "label": "scanner 7"})
        assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
        token = re.search(r'<code id="new-token">([^<]+)</code>', r.text)
        assert token and token.group(1).startswith("cw_")
        bearer = {"Authorization": f"Bearer {token.group(1)}"}
        assert httpx.get(workbench.url + "/api/v1/cases/CM-2025-000001", headers=bearer).status_code == 200
        listing = client.get("/admin/tokens").text
        assert token.group(1) not in listing and "scanner 7" in listing
        token_id = re.search(r"Token (\d+) for robot", r.text).group(1)  # type: ignore[union-attr]
        bad = client.post("/admin/tokens", data={"user": "robot", "expires_in": "forever"})
        assert bad.status_code == 422 and "not a number with a unit" in _alert(bad.text)
        r = client.post(f"/admin/tokens/{token_id}/revoke")
        assert r.status_code == 303 and r.headers["location"] == "/admin/tokens?done=token_revoked"
        refused = httpx.get(workbench.url + "/api/v1/cases/CM-2025-000001", headers=bearer)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


def test_case_types_and_calendars(workbench: Workbench, tmp_path: Path) -> None:
    broken = tmp_path / "types"
    broken.mkdir()
    for f in SHIPPED_DIR.iterdir():
        (broken / f.name).write_text(f.read_text())
    claim = broken / "claim.yaml"
    claim.write_text(claim.read_text().replace("queue: claims_registration", "queue: claims_nowhere", 1))
    line = next(n for n, text in enumerate(claim.read_text().splitlines(), 1) if "claims_nowhere" in text)
    with signed_in(workbench, "ada") as (client, _):
        page = client.get("/admin/case-types").text
        files = page[page.index('id="files-title"'):page.index('id="stored-title"')]
        for name, version in (("complaint", 3), ("claim", 2), ("general", 2)):
            row = (rf'<th scope="row">{name} <span[^>]*>[^<]*</span></th><td class="num">{version}</td>'
                   r'\s*<td>loaded</td>')
            assert re.search(row, files), name
        checked = client.get("/admin/case-types", params={"folder": str(broken)}).text
        assert f"{claim}:{line}:" in checked and "claims_nowhere" in checked
        assert "problem" in _alert(checked[checked.index('id="check-title"'):])
        fine = client.get("/admin/case-types", params={"folder": str(SHIPPED_DIR)}).text
        assert "case types OK in" in fine
        calendars = client.get("/admin/calendars").text
        assert 'id="cal-1">default</h2>' in calendars and "Europe/London" in calendars
        assert "America/New_York" in calendars and "complaint" in calendars
    assert not check_folder(broken, calendars=workbench.rt.calendars).ok


def _dead(wb: Workbench, name: str) -> str:
    r = httpx.post(wb.url + "/api/v1/items", headers=wb.robot, timeout=30,
                   files={"file": (f"{name}.pdf", BROKEN_PDF)}, data={"channel": "file", "source_id": name,
                                                                       "metadata": json.dumps({})})
    assert r.status_code == 202, r.text
    return str(r.json()["item_id"])


def _wait_failed(wb: Workbench, item_ids: list[str], *, since: int = 0) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with wb.rt.read_sessions() as s:
            failed = s.scalars(select(ItemFailure.item_id).where(ItemFailure.item_id.in_(item_ids),
                                                                 ItemFailure.id > since)).all()
        if set(failed) >= set(item_ids):
            return
        time.sleep(0.2)
    raise AssertionError(f"{item_ids} did not fail within 60 s")


def test_one_dead_letter_is_replayed_and_another_discarded(workbench: Workbench) -> None:
    replay, discard = _dead(workbench, "dead-replay"), _dead(workbench, "dead-discard")
    _wait_failed(workbench, [replay, discard])
    with signed_in(workbench, "alice") as (client, _):
        page = client.get("/ops").text
        assert replay[:8] in page and "Replay item" not in page, "agents see the list, not the buttons"
        assert client.post("/ops/dead-letters/replay", data={"item_id": replay, "stage": "extract"}).status_code == 403
    with signed_in(workbench, "sue") as (client, _):
        page = client.get("/ops").text
        assert f'aria-label="Replay item {replay[:8]} in extract"' in page
        r = client.post("/ops/dead-letters/discard", data={"item_id": discard, "stage": "extract", "reason": " "})
        assert r.status_code == 422 and "Give a reason" in r.text
        with workbench.rt.read_sessions() as s:
            last = s.scalar(select(ItemFailure.id).order_by(ItemFailure.id.desc())) or 0
        r = client.post("/ops/dead-letters/replay", data={"item_id": replay, "stage": "extract"})
        assert r.status_code == 303 and r.headers["location"] == "/ops?done=replayed"
        r = client.post("/ops/dead-letters/discard",
                        data={"item_id": discard, "stage": "extract", "reason": "a test file, nobody will fix it"})
        assert r.status_code == 303 and r.headers["location"] == "/ops?done=discarded"
        again = client.post("/ops/dead-letters/discard", data={"item_id": discard, "stage": "extract", "reason": "x"})
        assert again.status_code == 409 and "no outstanding dead letter" in again.text
        _wait_failed(workbench, [replay], since=last)  # the replayed item went through extract again
        page = client.get("/ops").text
        found = re.finditer(r"<code>(\w{8})</code></td>\s*<td>.*?</td></tr>", page, re.S)
        rows = {m.group(1): m.group(0) for m in found}
        assert "discarded" in rows[discard[:8]]
    with workbench.rt.read_sessions() as s:
        handled = s.execute(select(AuditEvent.action, AuditEvent.actor, AuditEvent.reason, AuditEvent.item_id)
                            .where(AuditEvent.action.in_(("dlq.replayed", "dlq.discarded")))).all()
    assert ("dlq.replayed", "sue", "", replay) in handled
    assert ("dlq.discarded", "sue", "a test file, nobody will fix it", discard) in handled
