"""/metrics shows the work queues (issue 13: queue depths, SLA at risk and breached) from the
trigger-kept counts: a real store, tasks written as the engine writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.settings import Settings
from api.wiring import open_runtime
from casestore import users
from casestore.work import queue_counts, queues
from tests.casestore.work.rows import agent, case, clock, definition, store_definition, task


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("casework_queue_")}


def test_metrics_show_queue_depth_sla_risk_and_the_oldest_waiting(tmp_path: Path) -> None:
    rt = open_runtime(Settings(data_dir=tmp_path / "data"))
    now = datetime.now(UTC)
    try:
        with rt.sessions() as s, s.begin():
            store_definition(s, definition())
            users.add_user(s, name="sue", role="supervisor")
            token = users.create_token(s, name="sue")
            calm, risky, late, other_team = case(s), case(s), case(s), case(s, team="claims")
            clock(s, risky, start=now - timedelta(hours=3, minutes=30))  # warns at 3 h, due at 4 h
            clock(s, late, start=now - timedelta(hours=5))
            held = task(s, calm, created_at=now - timedelta(hours=2))
            task(s, risky, created_at=now - timedelta(hours=1))
            task(s, late, created_at=now - timedelta(minutes=30))
            task(s, other_team, created_at=now)  # another team's case: counted too (metrics see every queue)
            task(s, late, queue="complaints_senior", created_at=now)
            queues.claim(s, task_id=held.id, actor=agent("alice"), now=now)
        with rt.sessions() as s, s.begin():
            queue_counts.fold(s)
        text = TestClient(create_app(rt)).get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    finally:
        rt.close()
    got = _samples(text)
    assert got[("casework_queue_tasks", (("queue", "complaints"), ("state", "waiting")))] == 3
    assert got[("casework_queue_tasks", (("queue", "complaints"), ("state", "active")))] == 1
    assert got[("casework_queue_tasks", (("queue", "complaints_senior"), ("state", "waiting")))] == 1
    assert got[("casework_queue_sla_at_risk", (("queue", "complaints"),))] == 1
    assert got[("casework_queue_sla_breached", (("queue", "complaints"),))] == 1
    assert got[("casework_queue_sla_breached", (("queue", "complaints_senior"),))] == 1
    oldest = got[("casework_queue_oldest_waiting_age_seconds", (("queue", "complaints"),))]
    assert 3000 < oldest < 7200, "the oldest waiting task is the risky one, an hour old (the held one is active)"
