"""Users and tokens over /api/v1/admin, and what a token's lifecycle does to requests:
expiry, revocation, disabled users, and last use recorded without a write per request.
SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from api.app import create_app
from api.settings import AuthSettings
from api.wiring import Runtime
from casestore.models import ApiToken, utcnow
from tests.api.conftest import JANE_CASE, bearer, two_team_runtime


@pytest.fixture
def client(two_teams: Runtime) -> TestClient:
    return TestClient(create_app(two_teams))


def _last_used(rt: Runtime) -> list[object]:
    with rt.read_sessions() as s:
        return list(s.scalars(select(ApiToken.last_used_at).order_by(ApiToken.id)))


def test_admin_routes_are_for_admins_only(client: TestClient, two_teams: Runtime) -> None:
    for who in ("sue", "alice", "robot"):
        headers = bearer(two_teams, who)
        assert client.get("/api/v1/admin/users", headers=headers).status_code == 403
        assert client.get("/api/v1/admin/tokens", headers=headers).status_code == 403
        assert client.post("/api/v1/admin/tokens", headers=headers, json={"user": who}).status_code == 403
    assert client.get("/api/v1/admin/users").status_code == 401


def test_users_can_be_listed_added_disabled_and_enabled(client: TestClient, two_teams: Runtime) -> None:
    root, alice = bearer(two_teams, "root"), bearer(two_teams, "alice")
    listed = client.get("/api/v1/admin/users", headers=root).json()
    assert [u["name"] for u in listed] == ["alice", "bob", "mailroom", "robot", "root", "sue"]
    assert set(listed[0]) == {"name", "role", "teams", "disabled", "created_at"}
    made = client.post("/api/v1/admin/users", headers=root, json={"name": "dan", "role": "agent", "teams": ["claims"]})
    assert made.status_code == 201 and made.json()["teams"] == ["claims"]
    assert client.post("/api/v1/admin/users", headers=root, json={"name": "dan", "role": "agent"}).status_code == 409
    assert client.post("/api/v1/admin/users", headers=root, json={"name": "eve", "role": "root"}).status_code == 422

    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200
    off = client.post("/api/v1/admin/users/alice/disable", headers=root)
    assert off.status_code == 200 and off.json()["disabled"] is True
    refused = client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice)
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    assert client.post("/api/v1/admin/users/alice/enable", headers=root).json()["disabled"] is False
    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200
    assert client.post("/api/v1/admin/users/root/disable", headers=root).status_code == 409, "not yourself"
    assert client.post("/api/v1/admin/users/nobody/disable", headers=root).status_code == 404


def test_a_users_role_and_teams_change_and_hold_from_the_next_request(client: TestClient, two_teams: Runtime) -> None:
    root, bob = bearer(two_teams, "root"), bearer(two_teams, "bob")
    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=bob).status_code == 404, "bob is in claims"
    moved = client.patch("/api/v1/admin/users/bob", headers=root, json={"teams": ["claims", "complaints"]})
    assert moved.status_code == 200 and moved.json()["teams"] == ["claims", "complaints"]
    assert moved.json()["role"] == "agent", "a role left out is left as it is"
    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=bob).status_code == 200, "the same token, at once"
    promoted = client.patch("/api/v1/admin/users/bob", headers=root, json={"role": "Supervisor"})
    assert promoted.json() == promoted.json() | {"role": "supervisor", "teams": ["claims", "complaints"]}
    assert client.patch("/api/v1/admin/users/bob", headers=root, json={"role": "root"}).status_code == 422
    assert client.patch("/api/v1/admin/users/bob", headers=root, json={"teams": [" "]}).status_code == 422
    assert client.patch("/api/v1/admin/users/nobody", headers=root, json={"teams": []}).status_code == 404
    assert client.patch("/api/v1/admin/users/root", headers=root, json={"role": "agent"}).status_code == 409
    assert client.patch("/api/v1/admin/users/root", headers=root, json={"teams": ["claims"]}).status_code == 200
    assert client.patch("/api/v1/admin/users/bob", headers=bob, json={"role": "admin"}).status_code == 403


def test_an_admin_sets_a_workbench_password(client: TestClient, two_teams: Runtime) -> None:
    from casestore.signin.passwords import check_password

    root = bearer(two_teams, "root")
    made = client.post("/api/v1/admin/users/alice/password", headers=root, json={"password": "a long passphrase"})
    assert made.status_code == 200 and made.json()["name"] == "alice"
    with two_teams.read_sessions() as s:
        assert check_password(s, name="alice", password="a long passphrase") is not None
    weak = client.post("/api/v1/admin/users/alice/password", headers=root, json={"password": "short"})
    assert weak.status_code == 422 and "at least 10" in weak.json()["detail"]
    machine = client.post("/api/v1/admin/users/robot/password", headers=root, json={"password": "a long passphrase"})
    assert machine.status_code == 422 and "bearer tokens" in machine.json()["detail"]
    alice = bearer(two_teams, "alice")
    assert client.post("/api/v1/admin/users/alice/password", headers=alice,
                       json={"password": "a long passphrase"}).status_code == 403


def test_tokens_are_created_listed_and_revoked(client: TestClient, two_teams: Runtime) -> None:
    root = bearer(two_teams, "root")
    made = client.post("/api/v1/admin/tokens", headers=root, json={"user": "alice", "expires_in": "90d",
                                                                   "label": "laptop"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["token"].startswith("cw_") and body["label"] == "laptop" and body["user"] == "alice"
    alice = {"Authorization": f"Bearer {body['token']}"}
    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200

    listed = client.get("/api/v1/admin/tokens", headers=root, params={"user": "alice"}).json()
    assert [t["id"] for t in listed] == [body["id"]]
    assert set(listed[0]) == {"id", "user", "label", "created_at", "expires_at", "last_used_at", "revoked",
                              "revoked_at"}, "never the token itself"
    assert body["token"] not in client.get("/api/v1/admin/tokens", headers=root).text

    revoked = client.post(f"/api/v1/admin/tokens/{body['id']}/revoke", headers=root)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert client.post("/api/v1/admin/tokens/999999/revoke", headers=root).status_code == 404
    bad = client.post("/api/v1/admin/tokens", headers=root, json={"user": "alice", "expires_in": "soon"})
    assert bad.status_code == 422 and "90d" in bad.json()["detail"]

    bob = bearer(two_teams, "bob"), bearer(two_teams, "bob")
    all_of_bob = client.post("/api/v1/admin/users/bob/revoke-tokens", headers=root)
    assert all_of_bob.json() == {"user": "bob", "revoked": 2}
    assert all(client.get("/api/v1/triage", headers=b).status_code == 401 for b in bob)


def test_an_expired_token_is_refused_with_a_message_saying_so(client: TestClient, two_teams: Runtime) -> None:
    root = bearer(two_teams, "root")
    made = client.post("/api/v1/admin/tokens", headers=root, json={"user": "alice", "expires_in": "1h"}).json()
    alice = {"Authorization": f"Bearer {made['token']}"}
    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200
    with two_teams.sessions() as s, s.begin():  # an hour and a minute later
        s.execute(update(ApiToken).where(ApiToken.id == made["id"]).values(expires_at=utcnow() - timedelta(minutes=1)))
    refused = client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice)
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"


def test_requests_write_nothing_and_last_use_is_flushed_in_batches(client: TestClient, two_teams: Runtime) -> None:
    alice = bearer(two_teams, "alice")
    for _ in range(3):
        assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200
    assert _last_used(two_teams) == [None], "buffered: no write per request (the interval is a minute)"
    buffer = client.app.state.last_use  # type: ignore[attr-defined]
    assert buffer.flush(two_teams.engine) == 1
    assert _last_used(two_teams)[0] is not None


@pytest.fixture
def eager(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    """A runtime whose last-use times are flushed after every response."""
    rt = two_team_runtime(tmp_path, db_url, auth=AuthSettings(last_used_flush_s=0))
    yield rt
    rt.close()


def test_a_locked_token_table_never_blocks_a_request(eager: Runtime) -> None:
    client = TestClient(create_app(eager))
    alice = bearer(eager, "alice")
    url = eager.settings.db_url
    if url.startswith("sqlite"):  # another process holds the database's write lock
        holder = sqlite3.connect(make_url(url).database or "", isolation_level=None, timeout=0)
        holder.execute("BEGIN IMMEDIATE")
        release = holder.rollback
    else:  # another transaction holds the token's row lock
        conn = eager.engine.connect()
        conn.begin()
        conn.execute(text("SELECT id FROM api_tokens FOR UPDATE"))
        release = conn.rollback
    try:
        for _ in range(2):
            assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200
        assert _last_used(eager) == [None], "the flush gave way to the lock and kept the time"
        assert client.app.state.last_use.pending()  # type: ignore[attr-defined]
    finally:
        release()
    assert client.get(f"/api/v1/cases/{JANE_CASE}", headers=alice).status_code == 200
    assert _last_used(eager)[0] is not None, "written by the first flush after the lock went"
