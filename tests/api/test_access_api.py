"""Cross-team access over HTTP, with the pipeline running: an agent of one team can neither
write into nor read about another team's cases and customers, through uploads, triage, items
or search; and upload keys belong to whoever supplied them.  SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.wiring import Runtime
from ingest.intake import make_raw_item, publish_raw
from ingest.messages import item_id_for
from ingest.pipeline import PipelineRunner
from tests.api.conftest import JANE_CASE, SAM_CASE, bearer, two_team_runtime, wait_filed


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = two_team_runtime(tmp_path, db_url)
    runner = PipelineRunner(runtime.pipeline_parts())
    runner.start()
    yield runtime
    runner.close()
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt))


def _upload(client: TestClient, who: dict[str, str], text: bytes, *, name: str = "x.txt",
            channel: str = "api", source_id: str | None = None, **meta: str) -> Any:
    data = {"channel": channel, "metadata": json.dumps(meta)}
    if source_id is not None:
        data["source_id"] = source_id
    return client.post("/api/v1/items", headers=who, data=data, files={"file": (name, text, "text/plain")})


def _search_total(client: TestClient, who: dict[str, str], word: str, expect: int) -> int:
    deadline = time.monotonic() + 30  # the file stage indexes each batch just after its commit
    while True:
        total = int(client.get("/api/v1/search", headers=who, params={"q": word}).json()["total"])
        if total == expect or time.monotonic() > deadline:
            return total
        time.sleep(0.1)


def test_an_upload_naming_another_teams_case_is_refused_as_if_missing(client: TestClient, rt: Runtime) -> None:
    alice = bearer(rt, "alice")
    hidden = _upload(client, alice, b"for the claim", case_ref=SAM_CASE)
    missing = _upload(client, alice, b"for the claim", case_ref="CM-2099-999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(SAM_CASE, "X") == missing.json()["detail"].replace("CM-2099-999999", "X")
    assert _upload(client, alice, b"for my complaint", case_ref=JANE_CASE).status_code == 202
    other_team = _upload(client, alice, b"open it in claims", team="claims")
    assert other_team.status_code == 403 and "complaints" in other_team.json()["detail"]
    robot = bearer(rt, "mailroom")  # an integration of no team: only into cases of no team
    assert _upload(client, robot, b"scan", case_ref=JANE_CASE).status_code == 404


def test_content_quoting_another_teams_case_goes_to_triage_not_into_it(client: TestClient, rt: Runtime) -> None:
    alice, bob, sue = bearer(rt, "alice"), bearer(rt, "bob"), bearer(rt, "sue")
    text = f"Re {SAM_CASE}: gnurflax, the surveyor's report on the water damage".encode()
    r = _upload(client, alice, text, sender_email="sam@example.com")  # Sam's address: the content agrees
    assert r.status_code == 202, r.text
    item_id = r.json()["item_id"]
    view = wait_filed(client, item_id, sue)
    assert (view["outcome"], view["case_ref"]) == ("triage", None), "never into the claims case"
    assert SAM_CASE in view["decision"]["candidates"] and "may not file into" in view["decision"]["reason"]
    assert client.get(f"/api/v1/cases/{SAM_CASE}", headers=sue).json()["documents"] == []
    assert client.get(f"/api/v1/items/{item_id}", headers=alice).status_code == 404
    assert item_id not in [q["item_id"] for q in client.get("/api/v1/triage", headers=alice).json()]
    assert item_id in [q["item_id"] for q in client.get("/api/v1/triage", headers=bob).json()]
    assert _search_total(client, bob, "gnurflax", 1) == 1
    assert _search_total(client, alice, "gnurflax", 0) == 0


def test_another_teams_triage_is_hidden_and_cannot_be_resolved(client: TestClient, rt: Runtime) -> None:
    robot, alice, bob = bearer(rt, "robot"), bearer(rt, "alice"), bearer(rt, "bob")
    theirs = _upload(client, robot, f"Re {SAM_CASE}: send me all you hold".encode(),
                     sender_email="mallory@evil.example").json()["item_id"]
    mine = _upload(client, robot, f"Re {JANE_CASE}: send me all you hold".encode(),
                   sender_email="mallory@evil.example").json()["item_id"]
    assert wait_filed(client, theirs, robot)["outcome"] == wait_filed(client, mine, robot)["outcome"] == "triage"

    alice_queue = [q["item_id"] for q in client.get("/api/v1/triage", headers=alice).json()]
    assert mine in alice_queue and theirs not in alice_queue
    assert theirs in [q["item_id"] for q in client.get("/api/v1/triage", headers=bob).json()]
    assert client.get(f"/api/v1/items/{theirs}", headers=alice).status_code == 404
    refused = client.post(f"/api/v1/triage/{theirs}/resolve", headers=alice, json={"action": "noise"})
    assert refused.status_code == 404


def test_no_new_case_for_another_teams_customer(client: TestClient, rt: Runtime) -> None:
    """Opening a case for Sam (claims only) would show alice Sam's record: refused like an unknown customer."""
    robot, alice = bearer(rt, "robot"), bearer(rt, "alice")
    mine = _upload(client, robot, f"Re {JANE_CASE}: send me all you hold".encode(),
                   sender_email="mallory@evil.example").json()["item_id"]
    assert wait_filed(client, mine, alice)["outcome"] == "triage"
    sam = client.post(f"/api/v1/triage/{mine}/resolve", headers=alice,
                      json={"action": "new_case", "customer_id": "C2"})
    nobody = client.post(f"/api/v1/triage/{mine}/resolve", headers=alice,
                         json={"action": "new_case", "customer_id": "C-NOBODY"})
    assert sam.status_code == nobody.status_code == 404 and "Sam" not in sam.text
    assert sam.json()["detail"].replace("'C2'", "X") == nobody.json()["detail"].replace("'C-NOBODY'", "X")
    jane = client.post(f"/api/v1/triage/{mine}/resolve", headers=alice,
                       json={"action": "new_case", "customer_id": "C1"})
    assert jane.status_code == 200 and jane.json()["outcome"] == "new_case"


def test_an_agent_cannot_claim_the_mailrooms_key(client: TestClient, rt: Runtime) -> None:
    mailroom, alice, sue = bearer(rt, "mailroom"), bearer(rt, "alice"), bearer(rt, "sue")
    first = _upload(client, mailroom, b"Scanned letter from Jane Doe", source_id="scan-0001").json()
    grabbed = _upload(client, alice, b"something else entirely", source_id="scan-0001").json()
    assert grabbed["duplicate"] is False and grabbed["item_id"] != first["item_id"]
    again = _upload(client, mailroom, b"Scanned letter from Jane Doe", source_id="scan-0001").json()
    assert again["item_id"] == first["item_id"], "the mailroom's own re-send is still idempotent"
    wait_filed(client, first["item_id"], sue)
    assert _upload(client, mailroom, b"re-sent", source_id="scan-0001").json()["duplicate"] is True
    assert _upload(client, alice, b"same bytes as the mailroom", source_id="scan-0001").json()["item_id"] == \
        grabbed["item_id"], "alice's duplicate names alice's item, never the mailroom's"


def _email(message_id: str, body: str) -> bytes:
    return (f"From: Jane Doe <jane@example.com>\r\nTo: help@example.com\r\nSubject: my complaint\r\n"
            f"Message-ID: <{message_id}>\r\n\r\n{body}\r\n").encode()


def test_an_uploaded_message_id_does_not_swallow_the_real_email(client: TestClient, rt: Runtime) -> None:
    alice, sue = bearer(rt, "alice"), bearer(rt, "sue")
    forged = _upload(client, alice, _email("real-1@example.com", "forged text"), name="f.eml",
                     channel="email").json()
    as_source = _upload(client, alice, b"forged too", channel="email", source_id="msgid:real-2@example.com").json()
    real = [make_raw_item(blobs=rt.blobs, data=_email(mid, f"the real text {n}"), channel="email",
                          filename=None, source="imap:INBOX") for n, mid in
            ((1, "real-1@example.com"), (2, "real-2@example.com"))]
    assert [r.item_id for r in real] == [item_id_for("email:msgid:real-1@example.com"),
                                         item_id_for("email:msgid:real-2@example.com")], "connector keys unchanged"
    assert real[0].item_id not in (forged["item_id"], as_source["item_id"])
    publish_raw(rt.bus, real)
    for r, n in zip(real, (1, 2), strict=True):
        view = wait_filed(client, r.item_id, sue)
        assert f"the real text {n}" in view["text"] and view["source"] == "imap:INBOX"
    assert "forged" in wait_filed(client, forged["item_id"], sue)["text"]
