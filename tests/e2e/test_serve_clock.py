"""`casework serve` on the embedded default runs the SLA clock loop: a clock due before serve started
fires (with its escalation) while serve runs, /health shows the loop, and SIGTERM still ends serve."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from casestore import users
from casestore.db import make_engine, session_factory, upgrade
from casestore.models import AuditEvent, utcnow
from casestore.work.models import SlaClock
from tests.casestore.work.rows import case, clock, definition, store_definition
from tests.e2e.test_serve_signals import start_serve, wait_empty

ESCALATE = [{"clock": "first_response", "on": "breach", "actions": [{"notify_role": "supervisor"}]}]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_fires_due_clocks_and_reports_the_loop(tmp_path: Path, user_env: dict[str, str]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'casework.db'}")
    upgrade(engine)
    with session_factory(engine)() as s, s.begin():
        store_definition(s, definition(escalations=ESCALATE))
        c = case(s)
        clock(s, c, start=utcnow() - timedelta(hours=5))
        case_id = c.id
        users.add_user(s, name="ops", role="admin")
        token = users.create_token(s, name="ops")  # /health shows its details to token holders
    env = {**user_env, "CASEWORK_CLOCK__INTERVAL_S": "0.5"}
    server, log_path = start_serve(tmp_path, env)
    try:
        deadline, breached = time.monotonic() + 60, None
        while breached is None and time.monotonic() < deadline:
            with session_factory(engine)() as s:
                breached = s.scalar(select(SlaClock.breached_at).where(SlaClock.case_id == case_id))
            time.sleep(0.2)
        assert breached is not None, log_path.read_text(errors="replace")[-3000:]
        port = next(a for a in server.args if str(a).isdigit())
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10,
                           headers={"Authorization": f"Bearer {token}"}).json()
        assert health["pipeline"]["clock"] == "running", json.dumps(health)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        code = server.wait(60)
        for pid, _ in wait_empty(server.pid, 10):
            os.kill(pid, signal.SIGKILL)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
    with session_factory(engine)() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id))]
    assert actions == ["sla.warned", "sla.breached", "sla.notify"]
    engine.dispose()
