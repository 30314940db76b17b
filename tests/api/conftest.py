"""A runtime on the ``db_url`` store (SQLite and PostgreSQL) with two teams, for the access tests.

Jane (C1) has a complaints case, Sam (C2) a claims case.  alice is a complaints agent, bob a
claims agent, sue a supervisor, root an admin; robot is an integration filing for both teams,
mailroom an integration of no team.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import DbSettings, Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, users

JANE_CASE, SAM_CASE = "CM-2025-000001", "CM-2025-000002"


def two_team_runtime(tmp_path: Path, db_url: str, **settings: Any) -> Runtime:
    rt = open_runtime(Settings(data_dir=tmp_path / "data", db=DbSettings(url=db_url), **settings))
    with rt.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com")
        customers.upsert_customer(s, customer_id="C2", name="Sam Poe", email="sam@example.com")
        cases.upsert_case(s, ref=JANE_CASE, customer_id="C1", case_type="complaint", status="open",
                          opened_at=None, subject="noise at night", team="complaints")
        cases.upsert_case(s, ref=SAM_CASE, customer_id="C2", case_type="claim", status="open",
                          opened_at=None, subject="water damage", team="claims")
        users.add_user(s, name="alice", role="agent", teams=["complaints"])
        users.add_user(s, name="bob", role="agent", teams=["claims"])
        users.add_user(s, name="sue", role="supervisor")
        users.add_user(s, name="root", role="admin")
        users.add_user(s, name="robot", role="integration", teams=["complaints", "claims"])
        users.add_user(s, name="mailroom", role="integration")
    return rt


@pytest.fixture
def two_teams(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    """The store only (no pipeline)."""
    rt = two_team_runtime(tmp_path, db_url)
    yield rt
    rt.close()


def bearer(rt: Runtime, name: str) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        return {"Authorization": f"Bearer {users.create_token(s, name=name)}"}


def wait_filed(client: TestClient, item_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """The item once the pipeline filed it (read as ``headers``, who must be able to see it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/items/{item_id}", headers=headers)
        if r.status_code == 200 and r.json()["outcome"] is not None:
            return dict(r.json())
        time.sleep(0.05)
    raise AssertionError(f"item {item_id} not filed within 30 s")
