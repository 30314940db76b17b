"""Issue 15.11: the search outbox's depth in /health (token holders) and in /metrics."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.wiring import open_runtime
from casestore import users
from casestore.search import outbox
from casestore.search.models import SearchOutboxEntry


def test_health_and_metrics_show_what_waits_for_the_index(tmp_path: Path) -> None:
    rt = open_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        with rt.sessions() as s, s.begin():
            users.add_user(s, name="sue", role="supervisor")
            sue = {"Authorization": f"Bearer {users.create_token(s, name='sue')}"}
        client = TestClient(create_app(rt))
        assert client.get("/health", headers=sue).json()["search_outbox"] == {
            "pending": 0, "failing": 0, "oldest_age_s": 0.0}
        with rt.sessions() as s, s.begin():
            outbox.enqueue(s, item_ids=["item-a", "item-b"], case_refs=["CM-1"])
            s.query(SearchOutboxEntry).filter(SearchOutboxEntry.item_id == "item-a").update({"attempts": 2})
        health = client.get("/health", headers=sue).json()
        assert health["search_outbox"]["pending"] == 3 and health["search_outbox"]["failing"] == 1
        assert health["status"] == "degraded"  # the index is not taking updates
        assert client.get("/health").json() == {"status": "degraded"}
        metrics = client.get("/metrics", headers=sue).text
        assert "casework_search_outbox_pending 3.0" in metrics
        assert "casework_search_outbox_failing 1.0" in metrics
    finally:
        rt.close()
