"""Case work over HTTP, on the shipped complaint type: complete with checklist and code, overrides,
notes, status, close, the case folder's work section, and the 4xx answers (SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, users
from casestore.work.inbound import start_imported

REF = "CM-2026-000001"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=tmp_path / "data"))
    setup = runtime.work
    with runtime.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com")
        case, _ = cases.upsert_case(s, ref=REF, customer_id="C1", case_type="complaint", status="open",
                                    opened_at=None, subject="noise at night", team="complaints")
        start_imported(s, case=case, setup=setup)
        users.add_user(s, name="alice", role="agent", teams=["complaints"])
        users.add_user(s, name="eve", role="agent", teams=["claims"])
        users.add_user(s, name="sue", role="supervisor")
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt))


def auth(rt: Runtime, name: str) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        return {"Authorization": f"Bearer {users.create_token(s, name=name)}"}


def work(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/api/v1/cases/{REF}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["work"])


def open_task(client: TestClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    return next(t for t in work(client, headers)["tasks"] if t["name"] == name and t["state"] in ("queued", "active"))


def test_an_agent_works_a_complaint_through_its_first_stage(rt: Runtime, client: TestClient) -> None:
    alice, sue, eve = auth(rt, "alice"), auth(rt, "sue"), auth(rt, "eve")
    folder = client.get(f"/api/v1/cases/{REF}", headers=alice).json()
    assert folder["ref"] == REF and folder["customer"]["customer_id"] == "C1"
    w = folder["work"]
    assert (w["case_type"], w["version"], w["stage"], w["status"]) == ("complaint", 3, "intake", "in_progress")
    assert {c["name"] for c in w["clocks"]} == {"acknowledgement", "final_response"}
    ack = open_task(client, alice, "acknowledge")
    assert ack["codes"] == ["acknowledged"] and [i["state"] for i in ack["checklist"]] == ["open"] * 3

    claimed = client.post(f"/api/v1/tasks/{ack['id']}/claim", headers=alice).json()
    r = client.post(f"/api/v1/tasks/{ack['id']}/complete", headers=alice, json={"code": "done"})
    assert r.status_code == 422 and "use one of: acknowledged" in r.json()["detail"]
    r = client.post(f"/api/v1/tasks/{ack['id']}/complete", headers=alice, json={"code": "acknowledged"})
    assert r.status_code == 422 and "details_recorded" in r.json()["detail"]
    for item in ("details_recorded", "acknowledgement_sent"):
        r = client.post(f"/api/v1/tasks/{ack['id']}/checklist/{item}", headers=alice, json={"done": True})
        assert r.status_code == 200, r.text
    assert r.json()["missing"] == ["vulnerability_checked"]

    r = client.post(f"/api/v1/tasks/{ack['id']}/waive", headers=alice,
                    json={"item": "vulnerability_checked", "reason": "spoke to her"})
    assert r.status_code == 403
    r = client.post(f"/api/v1/tasks/{ack['id']}/waive", headers=sue, json={"item": "vulnerability_checked"})
    assert r.status_code == 422  # no reason
    r = client.post(f"/api/v1/tasks/{ack['id']}/waive", headers=sue,
                    json={"item": "vulnerability_checked", "reason": "checked on the phone"})
    assert r.status_code == 200 and r.json()["missing"] == []

    stale = client.post(f"/api/v1/tasks/{ack['id']}/complete", headers=alice,
                        json={"code": "acknowledged", "lease_version": claimed["lease_version"] - 1})
    assert stale.status_code == 409 and "expired or was taken over" in stale.json()["detail"]
    hidden = client.post(f"/api/v1/tasks/{ack['id']}/complete", headers=eve, json={"code": "acknowledged"})
    assert hidden.status_code == 404
    done = client.post(f"/api/v1/tasks/{ack['id']}/complete", headers=alice,
                       json={"code": "acknowledged", "note": "acknowledged by email",
                             "lease_version": claimed["lease_version"]})
    assert done.status_code == 200 and done.json()["state"] == "completed"

    w = work(client, alice)
    assert {t["name"]: t["state"] for t in w["tasks"]} == {"acknowledge": "completed", "assess": "queued"}
    assert next(c for c in w["clocks"] if c["name"] == "acknowledgement")["state"] == "stopped"
    assert w["assignee"] == "alice"
    waived = [h for h in w["history"] if h["action"] == "checklist.waived"]
    assert waived[0]["actor"] == "sue" and waived[0]["reason"] == "checked on the phone"
    notes = client.get(f"/api/v1/cases/{REF}", headers=alice).json()["notes"]
    assert [n["body"] for n in notes] == ["acknowledged by email"]


def test_notes_status_close_reopen_and_the_matrix(rt: Runtime, client: TestClient) -> None:
    alice, sue, eve = auth(rt, "alice"), auth(rt, "sue"), auth(rt, "eve")
    r = client.post(f"/api/v1/cases/{REF}/notes", headers=alice, json={"body": "called her back"})
    assert r.status_code == 201 and r.json()["author"] == "alice"
    assert client.post(f"/api/v1/cases/{REF}/notes", headers=eve, json={"body": "x"}).status_code == 404
    r = client.post(f"/api/v1/cases/{REF}/status", headers=alice, json={"status": "awaiting_customer"})
    assert r.status_code == 200 and r.json()["status"] == "awaiting_customer"
    assert client.get(f"/api/v1/cases/{REF}", headers=alice).json()["status"] == "pending"
    assert client.post(f"/api/v1/cases/{REF}/status", headers=alice, json={"status": "closed"}).status_code == 422

    r = client.post(f"/api/v1/cases/{REF}/stages/intake/skip", headers=alice, json={"reason": "x"})
    assert r.status_code == 403
    r = client.post(f"/api/v1/cases/{REF}/close", headers=alice, json={"code": "fixed"})
    assert r.status_code == 422 and "withdrawn" in r.json()["detail"]
    r = client.post(f"/api/v1/cases/{REF}/close", headers=alice, json={"code": "withdrawn", "reason": "she withdrew"})
    assert r.status_code == 200 and (r.json()["status"], r.json()["completion_code"]) == ("closed", "withdrawn")
    assert all(t["state"] == "cancelled" for t in r.json()["tasks"])
    assert client.post(f"/api/v1/cases/{REF}/close", headers=alice, json={"code": "withdrawn"}).status_code == 409
    assert client.post(f"/api/v1/cases/{REF}/reopen", headers=alice, json={"reason": "x"}).status_code == 403
    r = client.post(f"/api/v1/cases/{REF}/reopen", headers=sue, json={"reason": "withdrawn by mistake"})
    assert r.status_code == 200 and (r.json()["status"], r.json()["reopened"]) == ("in_progress", 1)

    r = client.post(f"/api/v1/cases/{REF}/clocks/final_response/change", headers=sue,
                    json={"reason": "agreed with the customer", "duration": "50d"})
    assert r.status_code == 200 and r.json()["state"] == "running"  # the close stopped it, the reopen resumed it
    r = client.post(f"/api/v1/cases/{REF}/urgency", headers=sue, json={"urgency": 30, "reason": "vulnerable"})
    assert r.status_code == 200 and r.json()["urgency"] == 30
    task = open_task(client, sue, "acknowledge")
    r = client.post(f"/api/v1/tasks/{task['id']}/reassign", headers=sue, json={"to": "alice", "reason": "hers"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["assignee"]) == ("active", "alice")
    r = client.post(f"/api/v1/tasks/{task['id']}/redirect", headers=sue,
                    json={"queue": "complaints_senior", "reason": "needs a senior"})
    assert r.status_code == 200 and (r.json()["queue"], r.json()["state"]) == ("complaints_senior", "queued")


def test_the_case_folder_schema_is_typed(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"CaseFolder", "CaseWorkView", "CaseTaskView", "ClockView", "ChecklistItemView"} <= set(schema)
    assert schema["CaseFolder"]["properties"]["work"]["anyOf"][0]["$ref"].endswith("/CaseWorkView")
