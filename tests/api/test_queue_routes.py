"""The work-queue routes and commands on a real store: HTTP through the app, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.clock_worker import ClockLoop
from api.settings import DbSettings, Settings
from api.wiring import Runtime, open_runtime
from casestore import users
from casestore.models import AuditEvent, utcnow
from casestore.work.models import SlaClock, WorkTask
from tests.casestore.work.rows import case, clock, definition, store_definition, task

ESCALATE = [{"clock": "first_response", "on": "breach", "actions": [{"raise_urgency": 7, "notify_role": "supervisor"}]}]


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=tmp_path / "data", db=DbSettings(url=db_url)))
    with runtime.sessions() as s, s.begin():
        store_definition(s, definition(escalations=ESCALATE))
        users.add_user(s, name="alice", role="agent", teams=["complaints"])
        users.add_user(s, name="bob", role="agent", teams=["complaints"])
        users.add_user(s, name="sue", role="supervisor")
        users.add_user(s, name="robot", role="integration")
        c = case(s)
        task(s, c, urgency=1)
        task(s, c)
        task(s, case(s, team="claims"), urgency=9)
    yield runtime
    runtime.close()


def token(rt: Runtime, name: str) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        return {"Authorization": f"Bearer {users.create_token(s, name=name)}"}


def test_get_next_claim_release_renew_over_http(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    alice, bob, robot = token(rt, "alice"), token(rt, "bob"), token(rt, "robot")
    assert client.post("/api/v1/work/next", headers=robot).status_code == 403
    first = client.post("/api/v1/work/next", headers=alice)
    assert first.status_code == 200, first.text
    t = first.json()["task"]
    assert (t["kind"], t["urgency"], t["assignee"], t["state"], t["lease_version"]) == ("task", 1, "alice", "active", 1)
    assert t["case_ref"].startswith("T-") and t["due_at"] is None

    conflict = client.post(f"/api/v1/tasks/{t['id']}/claim", headers=bob)
    assert conflict.status_code == 409 and "held by alice" in conflict.json()["detail"]
    stale = client.post(f"/api/v1/tasks/{t['id']}/renew", headers=alice, json={"lease_version": 99})
    assert stale.status_code == 409 and "stale" in stale.json()["detail"]
    renewed = client.post(f"/api/v1/tasks/{t['id']}/renew", headers=alice, json={"lease_version": 1})
    assert renewed.status_code == 200 and renewed.json()["lease_version"] == 1
    assert [m["id"] for m in client.get("/api/v1/work/mine", headers=alice).json()] == [t["id"]]
    assert client.get(f"/api/v1/tasks/{t['id']}", headers=bob).json()["assignee"] == "alice"

    assert client.post(f"/api/v1/tasks/{t['id']}/release", headers=bob).status_code == 409
    released = client.post(f"/api/v1/tasks/{t['id']}/release", headers=alice, json={"reason": "not mine"})
    assert released.status_code == 200 and released.json()["state"] == "queued"
    assert client.post(f"/api/v1/tasks/{t['id']}/claim", headers=bob).json()["assignee"] == "bob"
    second = client.post("/api/v1/work/next", headers=alice).json()["task"]
    assert second is not None and second["urgency"] == 0
    assert client.post("/api/v1/work/next", headers=alice).json() == {"task": None}, "the claims case is hidden"

    with rt.sessions() as s:
        hidden = s.scalar(select(WorkTask.id).where(WorkTask.urgency == 9))
    assert client.get(f"/api/v1/tasks/{hidden}", headers=alice).status_code == 404
    assert client.post(f"/api/v1/tasks/{hidden}/claim", headers=alice).status_code == 404
    assert client.post("/api/v1/tasks/999999/renew", headers=alice, json={}).status_code == 422


def test_queue_counts_and_pages_over_http(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    alice = token(rt, "alice")
    rows = client.get("/api/v1/queues", headers=alice).json()
    assert [(r["queue"], r["open"], r["waiting"]) for r in rows] == [("complaints", 2, 2)]
    page = client.get("/api/v1/queues/complaints/tasks?limit=1", headers=alice).json()
    assert len(page["tasks"]) == 1 and page["next_after"]
    rest = client.get("/api/v1/queues/complaints/tasks", headers=alice,
                      params={"after": page["next_after"], "limit": 1}).json()
    assert len(rest["tasks"]) == 1 and rest["next_after"] is None
    assert rest["tasks"][0]["id"] != page["tasks"][0]["id"]
    assert client.get("/api/v1/queues/complaints_senior/tasks", headers=alice).status_code == 403
    assert client.get("/api/v1/queues/nope/tasks", headers=alice).status_code == 404
    assert client.get("/api/v1/queues/complaints/tasks?after=%%%", headers=alice).status_code == 422


def test_held_work_and_named_queues_over_http(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    alice, sue = token(rt, "alice"), token(rt, "sue")
    first = client.post("/api/v1/work/next", headers=alice).json()["task"]
    held = client.get("/api/v1/work/held", headers=sue)
    assert held.status_code == 200 and [(t["id"], t["assignee"]) for t in held.json()] == [(first["id"], "alice")]
    assert client.get("/api/v1/work/held", headers=alice).status_code == 403, "supervisors and admins only"
    named = client.get("/api/v1/queues", headers=sue, params={"queue": ["complaints", "nope"]}).json()
    assert [(q["queue"], q["open"], q["active"]) for q in named] == [("complaints", 3, 1)], "all cases: a supervisor"
    mine = client.get("/api/v1/queues", headers=alice, params={"queue": "complaints_senior"}).json()
    assert mine == [], "a queue of another team is left out"


def test_the_cap_answers_409_with_what_to_do(tmp_path: Path, db_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", db=DbSettings(url=db_url), queues={"max_active_per_agent": 1})
    rt = open_runtime(settings)
    try:
        with rt.sessions() as s, s.begin():
            store_definition(s, definition())
            users.add_user(s, name="alice", role="agent", teams=["complaints"])
            c = case(s)
            task(s, c)
            task(s, c)
        client = TestClient(create_app(rt))
        alice = token(rt, "alice")
        assert client.post("/api/v1/work/next", headers=alice).json()["task"] is not None
        capped = client.post("/api/v1/work/next", headers=alice)
        assert capped.status_code == 409 and "complete or release one" in capped.json()["detail"]
        assert capped.json()["error"] == "Conflict"  # the app's one error shape, from get-next's fast path too
    finally:
        rt.close()


def test_the_clock_loop_sweeps_and_reaps_in_committed_batches(rt: Runtime) -> None:
    now = utcnow()
    with rt.sessions() as s, s.begin():
        for _ in range(3):
            clock(s, case(s), start=now - timedelta(hours=5))
        held = task(s, case(s))
        held.state, held.assignee, held.lease_expires_at = "active", "alice", now - timedelta(seconds=1)
    loop = ClockLoop(rt.sessions, interval_s=0.05, batch=2)
    result = loop.tick(now)
    assert (result.warned, result.breached, result.reaped) == (3, 3, 1)
    assert loop.tick(now).breached == 0
    loop.start()
    assert loop.alive()
    loop.close()
    assert not loop.alive() and loop.errors == 0


def _cli(data_dir: Path, db_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CASEWORK_DATA_DIR": str(data_dir), "CASEWORK_DB__URL": db_url}
    proc = subprocess.run([sys.executable, "-m", "api", *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_the_cli_work_queue_and_task_commands(rt: Runtime, db_url: str) -> None:
    data = rt.settings.data_dir
    got = json.loads(_cli(data, db_url, "work", "next", "--as", "alice", "--json").stdout)
    assert got["assignee"] == "alice" and got["urgency"] == 1
    mine = json.loads(_cli(data, db_url, "work", "mine", "--as", "alice", "--json").stdout)
    assert [m["id"] for m in mine] == [got["id"]]
    held = _cli(data, db_url, "task", "claim", str(got["id"]), "--as", "bob", check=False)
    assert held.returncode == 1 and "held by alice" in held.stderr
    _cli(data, db_url, "task", "release", str(got["id"]), "--as", "alice", "--reason", "lunch")
    assert json.loads(_cli(data, db_url, "task", "claim", str(got["id"]), "--as", "bob", "--json").stdout)[
        "assignee"] == "bob"
    counts = json.loads(_cli(data, db_url, "queue", "list", "--json").stdout)
    assert {q["queue"]: q["open"] for q in counts} == {"complaints": 3, "complaints_senior": 0}
    _cli(data, db_url, "work", "next", "--as", "alice")
    empty = _cli(data, db_url, "work", "next", "--as", "alice", check=False)
    assert empty.returncode == 3 and "nothing waiting" in empty.stdout
    unknown = _cli(data, db_url, "work", "next", "--as", "nobody", check=False)
    assert unknown.returncode == 1 and "no user named" in unknown.stderr


def test_casework_worker_clock_escalates_and_stops_on_sigterm(rt: Runtime, db_url: str) -> None:
    with rt.sessions() as s, s.begin():
        c = case(s)
        clock(s, c, start=utcnow() - timedelta(hours=5))
    env = {**os.environ, "CASEWORK_DATA_DIR": str(rt.settings.data_dir), "CASEWORK_DB__URL": db_url,
           "CASEWORK_CLOCK__INTERVAL_S": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "api", "worker", "clock"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        breached = None
        while time.monotonic() < deadline and breached is None:
            with rt.read_sessions() as s:
                breached = s.scalar(select(SlaClock.breached_at).where(SlaClock.case_id == c.id))
            time.sleep(0.1)
        assert breached is not None, "the worker did not fire the breach"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with rt.read_sessions() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.case_id == c.id))]
    assert actions == ["sla.warned", "sla.breached", "sla.notify", "case.urgency_raised"]


def test_get_next_over_http_is_two_statements_on_postgresql_and_four_on_sqlite(rt: Runtime) -> None:
    """What one get-next costs in statements (each a round trip on PostgreSQL, and on either store a
    wait to win the GIL back).  PostgreSQL: the token check and ``casework_get_next`` (guard, claim,
    audit event and case reference), each in autocommit: no BEGIN or COMMIT round trips, the row
    lock held for the function's own work.  SQLite: the token check, then in one BEGIN IMMEDIATE
    the cap guard, the claim and the audit event.  Both run on the driver's cursor (no SQLAlchemy
    execution layer), so the statements are counted by the driver: SQLite's trace hook, a psycopg
    cursor class that notes each statement (both see SQLAlchemy's statements too).  Profiling
    ``casework serve`` showed get-next waiting on these."""
    import psycopg
    from sqlalchemy import event

    client = TestClient(create_app(rt))
    alice = token(rt, "alice")
    assert client.post("/api/v1/work/next", headers=alice).status_code == 200  # warm: definitions, route state
    pg = rt.engine.dialect.name == "postgresql"
    seen: list[tuple[str, bool]] = []

    class Noting(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append((str(query).split()[0].upper(), self.connection.autocommit))  # psycopg's own flag
            return super().execute(query, *args, **kwargs)

    def trace(dbapi_connection: Any, *_args: Any) -> None:
        if pg:
            dbapi_connection.cursor_factory = Noting
        else:
            dbapi_connection.set_trace_callback(lambda sql: seen.append((sql.split()[0].upper(), False)))

    def untrace(dbapi_connection: Any, *_args: Any) -> None:
        if pg:
            dbapi_connection.cursor_factory = psycopg.Cursor
        else:
            dbapi_connection.set_trace_callback(None)

    hooks = [(rt.engine.pool, "checkout", trace), (rt.engine.pool, "checkin", untrace)]
    for target, name, fn in hooks:
        event.listen(target, name, fn)
    try:
        claimed = client.post("/api/v1/work/next", headers=alice).json()["task"]
    finally:
        for target, name, fn in hooks:
            event.remove(target, name, fn)
    assert claimed is not None and claimed["case_ref"].startswith("T-")
    if pg:
        assert seen == [("SELECT", True), ("SELECT", True)], "the token check, then casework_get_next"
    else:  # the token check (one statement, no transaction); then guard, claim and audit event in BEGIN IMMEDIATE
        # (the hook also reports the statements of the claim's queue-count triggers: the UPDATEs after the
        # first; and the PRAGMAs of a claim made on the event loop: no wait for the lock, no checkpoint)
        words = " ".join(s for s, _ in seen if s != "PRAGMA")
        assert re.fullmatch(r"SELECT BEGIN SELECT UPDATE( UPDATE)* INSERT COMMIT", words), words


def test_get_next_checkpoints_let_the_wal_start_again(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: the fast path's claims commit without SQLite's automatic checkpoint; its own
    checkpoint (every ``CHECKPOINT_EVERY`` claims, here 5, in worker threads, its last step with
    the writer turn) must let the WAL be written from its beginning again, or it grows with every
    claim.  Each restart draws new salts for the WAL's header (bytes 16-24), so the header seen
    after each call tells how often it restarted.  (Claims committed while a checkpoint runs are
    tests.casestore.test_sqlite_checkpoint's case.)"""
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's WAL")
    import api.get_next_fast
    import casestore.db

    monkeypatch.setattr(api.get_next_fast, "CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(casestore.db, "WAL_RESTART_FRAMES", 1)
    monkeypatch.setattr(rt.settings.queues, "max_active_per_agent", 100)
    with rt.sessions() as s, s.begin():
        c = case(s)
        for _ in range(60):
            task(s, c)
    client = TestClient(create_app(rt))
    alice = token(rt, "alice")
    wal = Path(f"{rt.engine.url.database}-wal")
    salts, claimed = set(), set()
    for _ in range(60):
        got = client.post("/api/v1/work/next", headers=alice)
        assert got.status_code == 200, got.text
        claimed.add(got.json()["task"]["id"])
        time.sleep(0.02)  # the checkpoint runs in worker threads after the response
        salts.add(wal.read_bytes()[16:24])
    assert len(claimed) == 60  # every call its own task
    assert len(salts) >= 4, "the WAL was not restarted after the fast path's checkpoints"


def test_get_next_records_the_tokens_last_use_after_the_response(rt: Runtime) -> None:
    """The route checks its token in its own worker thread; the last-use time still gets written
    (a background task after the response, as every other route's)."""
    from casestore.models import ApiToken
    from casestore.token_use import LastUseBuffer

    app = create_app(rt)
    app.state.last_use = LastUseBuffer(interval_s=0)  # flush after every request
    alice = token(rt, "alice")
    assert TestClient(app).post("/api/v1/work/next", headers=alice).status_code == 200
    with rt.read_sessions() as s:
        used = s.scalars(select(ApiToken.last_used_at).where(ApiToken.user.has(name="alice"))).all()
    assert len(used) == 1 and used[0] is not None


def test_get_next_refusals_read_as_every_other_routes(rt: Runtime) -> None:
    """get-next is answered in front of the framework (``api.get_next_fast``) only for a live
    worker's bearer token; every refusal is the framework's own, and a revocation or a disabled
    user takes effect at the next call (nothing about a token is cached)."""
    client = TestClient(create_app(rt))
    alice, robot = token(rt, "alice"), token(rt, "robot")
    unknown = client.post("/api/v1/work/next", headers={"Authorization": "Bearer cw_nothing"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"] == "Bearer"
    assert unknown.json()["detail"].startswith("invalid token")
    assert client.post("/api/v1/work/next").status_code == 401
    refused = client.post("/api/v1/work/next", headers=robot)
    assert refused.status_code == 403 and "role integration may not do this" in refused.json()["detail"]
    assert client.post("/api/v1/work/next", headers=alice).status_code == 200
    with rt.sessions() as s, s.begin():
        users.set_disabled(s, name="alice", disabled=True)
    disabled = client.post("/api/v1/work/next", headers=alice)
    assert disabled.status_code == 401 and "disabled" in disabled.json()["detail"]
    with rt.sessions() as s, s.begin():
        users.set_disabled(s, name="alice", disabled=False)
        users.revoke_tokens(s, name="alice")
    revoked = client.post("/api/v1/work/next", headers=alice)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]



def test_get_next_answers_the_same_in_front_of_the_framework_and_through_the_route(rt: Runtime) -> None:
    """The fast path (a bearer token, no body: ``api.get_next_fast``, on the driver's cursor) and the
    route (a request with a body goes to the framework) give the same response for a claim, the
    task's own view, and the same audit event; and the same empty answer."""
    client = TestClient(create_app(rt))
    alice = token(rt, "alice")
    fast = client.post("/api/v1/work/next", headers=alice)
    routed = client.post("/api/v1/work/next", headers=alice, content=b"{}")
    assert fast.status_code == routed.status_code == 200
    claimed = [fast.json()["task"], routed.json()["task"]]
    assert all(t is not None for t in claimed) and claimed[0]["id"] != claimed[1]["id"]
    for t in claimed:
        assert t == client.get(f"/api/v1/tasks/{t['id']}", headers=alice).json()  # the task's own view
        assert t["assignee"] == "alice" and t["state"] == "active" and t["lease_version"] == 1
    with rt.read_sessions() as s:
        claims = s.scalars(select(AuditEvent).where(AuditEvent.action == "task.claimed"))
        events = {e.details["task_id"]: e for e in claims}
    assert set(events) == {t["id"] for t in claimed}
    for t in claimed:
        event = events[t["id"]]
        assert event.actor == "alice" and event.details == {
            "task_id": t["id"], "task": t["name"], "queue": t["queue"], "how": "get_next", "lease_version": 1,
            "lease_expires_at": t["lease_expires_at"].replace("Z", "+00:00")}
    empty = [client.post("/api/v1/work/next", headers=alice), client.post("/api/v1/work/next", headers=alice,
                                                                             content=b"{}")]
    assert [r.json() for r in empty] == [{"task": None}] * 2  # alice's queue is empty: the claims team's is not hers
