"""A running `casework serve` notices a changed calendar and a new case-type version without a
restart (``api.config_watch``): the next clock change is computed on the new calendar, the new
version is stored by serve itself, and a calendar file that no longer loads leaves the running one."""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from casestore import users
from casestore.db import make_engine, session_factory, upgrade
from casestore.models import utcnow
from casestore.work.calendar_config import SHIPPED_CALENDARS
from casestore.work.loader import SHIPPED_DIR
from casestore.work.models import CaseTypeVersion
from tests.casestore.work.rows import AGENT_ACTIONS, case, clock, definition, store_definition
from tests.e2e.test_serve_signals import start_serve, wait_empty

ALWAYS_OPEN = "timezone: UTC\nhours:\n  mon-sun: [\"00:00-00:00\"]\n"


def _change(base: str, token: str, ref: str) -> datetime:
    """A supervisor sets the clock to 2 working days; when it is due now."""
    response = httpx.post(f"{base}/api/v1/cases/{ref}/clocks/first_response/change", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}, json={"duration": "2d", "reason": "test"})
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["due_at"])


def _wait_for(check, timeout: float, what: str, log_path: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout}s:\n" + log_path.read_text(errors="replace")[-3000:])


def test_serve_reloads_calendars_and_case_types_without_a_restart(tmp_path: Path, user_env: dict[str, str],
                                                                  db_url: str) -> None:
    calendars, types = tmp_path / "calendars", tmp_path / "case_types"
    shutil.copytree(SHIPPED_CALENDARS, calendars)
    shutil.copytree(SHIPPED_DIR, types)
    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'data' / 'casework.db'}"
    (tmp_path / "data").mkdir(exist_ok=True)
    engine = make_engine(url)
    upgrade(engine)
    watched = definition(name="watched")
    watched["roles"]["supervisor"] = [*AGENT_ACTIONS, "change_clock"]
    with session_factory(engine)() as s, s.begin():
        store_definition(s, watched)
        c = case(s, case_type="watched")
        clock(s, c, start=utcnow())  # on calendar "default": an English office, Monday to Friday 9-17
        ref = c.ref
        users.add_user(s, name="sup", role="supervisor", teams=("complaints",))
        token = users.create_token(s, name="sup")
    env = {**user_env, "CASEWORK_WORK__CALENDARS_DIR": str(calendars), "CASEWORK_WORK__CASE_TYPES_DIR": str(types),
           "CASEWORK_WORK__RELOAD_CHECK_S": "0.5"}
    server, log_path = start_serve(tmp_path, env)
    port = next(a for a in server.args if str(a).isdigit())
    base = f"http://127.0.0.1:{port}"
    try:
        office = _change(base, token, ref)
        asked = datetime.now(UTC)
        assert office - asked > timedelta(hours=16), "2 office days are more than 16 hours of clock time"

        (calendars / "default.yaml").write_text(ALWAYS_OPEN)  # now open around the clock: 2 days are 48 hours
        def on_new_calendar() -> datetime | None:
            asked = datetime.now(UTC)
            due_at = _change(base, token, ref)
            return due_at if abs(due_at - (asked + timedelta(hours=48))) < timedelta(minutes=2) else None
        _wait_for(on_new_calendar, 60, "the changed calendar was not used", log_path)

        general = (types / "general.yaml").read_text()
        (types / "general.yaml").write_text(general.replace("version: 2", "version: 3", 1))
        def stored() -> bool:
            with session_factory(engine)() as s:
                return s.scalar(select(CaseTypeVersion.version).where(CaseTypeVersion.name == "general",
                                                                      CaseTypeVersion.version == 3)) is not None
        _wait_for(stored, 60, "serve did not store general v3", log_path)

        (calendars / "default.yaml").write_text("timezone: Nowhere/Atlantis\nhours: {}\n")  # does not load
        _wait_for(lambda: "do not load" in log_path.read_text(errors="replace"), 60, "no error logged", log_path)
        asked = datetime.now(UTC)
        assert abs(_change(base, token, ref) - (asked + timedelta(hours=48))) < timedelta(minutes=2), \
            "the calendar that loaded last is still used"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        code = server.wait(60)
        for pid, _ in wait_empty(server.pid, 10):
            os.kill(pid, signal.SIGKILL)
        engine.dispose()
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
    assert "configuration reloaded" in log_path.read_text(errors="replace")

