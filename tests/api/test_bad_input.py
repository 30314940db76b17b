"""Bad input the API used to answer with a 500 now gets a 4xx with a message (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import users


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=tmp_path / "data", db={"url": db_url}))
    with runtime.sessions() as s, s.begin():
        users.add_user(s, name="alice", role="agent", teams=["complaints"])
        users.add_user(s, name="robot", role="integration")
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt), raise_server_exceptions=False)


def token(rt: Runtime, name: str) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        return {"Authorization": f"Bearer {users.create_token(s, name=name)}"}


def test_a_search_of_a_thousand_parentheses_is_answered(client: TestClient, rt: Runtime) -> None:
    r = client.get("/api/v1/search", params={"q": "(" * 1000}, headers=token(rt, "alice"))
    assert r.status_code == 200 and r.json()["total"] == 0
    r = client.get("/api/v1/search", params={"q": "(" * 495 + "boiler" + ")" * 495}, headers=token(rt, "alice"))
    assert r.status_code == 200


@pytest.mark.parametrize("like", [str(2**31), str(2**63), str(2**70), "-1", "0"])
def test_a_document_id_the_database_cannot_hold_is_a_422(client: TestClient, rt: Runtime, like: str) -> None:
    r = client.get("/api/v1/search", params={"like": like}, headers=token(rt, "alice"))
    assert r.status_code == 422 and "like" in r.text


@pytest.mark.parametrize("offset", [str(2**63), str(10**30)])
def test_a_huge_triage_offset_is_a_422(client: TestClient, rt: Runtime, offset: str) -> None:
    r = client.get("/api/v1/triage", params={"offset": offset}, headers=token(rt, "alice"))
    assert r.status_code == 422 and "offset" in r.text
    assert client.get("/api/v1/triage", params={"offset": 2**31 - 1}, headers=token(rt, "alice")).json() == []


def test_metadata_nested_5000_deep_is_a_422(client: TestClient, rt: Runtime) -> None:
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    r = client.post("/api/v1/items", headers=token(rt, "robot"), files={"file": ("a.txt", b"hello")},
                    data={"metadata": deep})
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]


def test_a_nul_in_an_id_or_reference_is_a_4xx_not_a_500(client: TestClient, rt: Runtime) -> None:
    """PostgreSQL cannot hold NUL in text: looking one up is bad input (404 or 422 with a message)."""
    alice = token(rt, "alice")
    answers = [
        client.get("/api/v1/cases/CM%00X", headers=alice),
        client.get("/api/v1/items/a%00b", headers=alice),
        client.post("/api/v1/triage/a%00b/resolve", headers=alice, json={"action": "noise"}),
        client.post("/api/v1/triage/abc/resolve", headers=alice, json={"action": "attach", "case_ref": "x\x00"}),
    ]
    for r in answers:
        assert r.status_code in (404, 422) and r.json()["detail"], (r.request.url, r.status_code, r.text)
