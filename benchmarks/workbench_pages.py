"""Server time per workbench page on the embedded default (SQLite, Tantivy), in-process through
the ASGI stack (Starlette's TestClient: no network, no browser).

``--part timeline``: a case with 500 timeline entries (200 items of two documents each, 200
notes, 100 audit events); each page is asked for ``--runs`` times after a warm-up, as a
signed-in agent.

``--part work``: ``--tasks`` open tasks (default 1,000,000: two per case, 20 queues of 10
teams, two running SLA clocks per case, bulk-loaded as ``benchmarks.queue_bench`` does), an
agent of four teams (8 queues, ~400,000 of the tasks) who holds 5 tasks: my work (``/``), a
queue page and its second page, the case list (unfiltered, active by urgency, mine), the
supervisor dashboard (every queue), and get-next clicked: ``POST /work/next`` and the case page it
leads to, one click after another.

    python -m benchmarks.workbench_pages [--part timeline|work|all] [--runs 200] [--tasks 1000000]

Prints one JSON line per page: median and p95 in milliseconds (and the 1-minute load average).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from api.app import create_app
from api.settings import QueueSettings, Settings
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, users
from casestore.models import AuditEvent, Document, Item, Note
from casestore.signin.passwords import set_password

REF = "CM-2025-000001"
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def _seed(data_dir: Path) -> None:
    rt = open_runtime(Settings(data_dir=data_dir))
    try:
        with rt.sessions() as s, s.begin():
            customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com")
            case, _ = cases.upsert_case(s, ref=REF, customer_id="C1", case_type="complaint", team="complaints")
            items = [dict(item_id=f"00000000-0000-0000-0000-{n:012d}", idempotency_key=f"k{n}", channel="email",
                          received_at=T0 + timedelta(hours=n), source="", filename=f"letter{n}.pdf",
                          blob_sha256=None, content_type=None, size=0, meta={}, sender="jane@example.com",
                          subject=f"letter {n}", outcome="attached", case_id=case.id, doc_type="complaint",
                          decision={"reason": "reference agreed by sender_email"}, filed_at=T0) for n in range(200)]
            s.execute(insert(Item), items)
            s.execute(insert(Document), [dict(item_id=i["item_id"], case_id=case.id, part_index=p, kind="body",
                                              title="", filename=f"part{p}.pdf", content_type="application/pdf",
                                              blob_sha256=None, text="words " * 200, fields={}, error=None,
                                              created_at=T0) for i in items for p in range(2)])
            s.execute(insert(Note), [dict(case_id=case.id, author="alice", body=f"note {n}",
                                          created_at=T0 + timedelta(hours=n, minutes=30)) for n in range(200)])
            s.execute(insert(AuditEvent), [dict(at=T0 + timedelta(hours=2 * n), actor="sue", action="case.updated",
                                                case_id=case.id, reason=f"event {n}", details={})
                                           for n in range(99)])
            users.add_user(s, name="alice", role="agent", teams=["complaints"])
            set_password(s, name="alice", password="correct horse battery staple")
    finally:
        rt.close()


def _client(rt: Runtime, name: str) -> tuple[TestClient, str]:
    """A client signed in as ``name`` and its CSRF token."""
    client = TestClient(create_app(rt))
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
    assert token
    r = client.post("/login", data={"name": name, "password": PASSWORD, "login_token": token.group(1)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert csrf
    return client, csrf.group(1)


def _report(name: str, times: list[float], **extra: object) -> None:
    times = sorted(times)
    print(json.dumps({"page": name, "runs": len(times), "median_ms": round(statistics.median(times), 1),
                      "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1), **extra,
                      "load_1m": round(os.getloadavg()[0], 1)}), flush=True)


def _measure(name: str, runs: int, ask: Callable[[], None], warm: int = 10, **extra: object) -> None:
    for _ in range(warm):
        ask()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        ask()
        times.append((time.perf_counter() - start) * 1000)
    _report(name, times, **extra)


def timeline_pages(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        _seed(data_dir)
        rt = open_runtime(Settings(data_dir=data_dir))
        client, _ = _client(rt, "alice")
        first = client.get(f"/cases/{REF}").text
        cursor = re.search(r"cursor=([^&\"]+)", first)
        assert cursor
        pages = {"case page (500 entries, first 30)": f"/cases/{REF}",
                 "timeline: load more": f"/cases/{REF}/timeline?cursor={cursor.group(1)}",
                 "document page": "/documents/1", "start": "/", "triage": "/triage", "ops": "/ops"}
        for name, path in pages.items():
            def ask(path: str = path) -> None:
                assert client.get(path).status_code == 200, path
            _measure(name, runs, ask)
        rt.close()


def _load_tasks(rt: Runtime, n_tasks: int) -> None:
    """The queue benchmark's data set (cases, work, tasks and their two clocks), bulk-loaded."""
    from benchmarks.queue_bench import bulk_load_sqlite

    seconds = bulk_load_sqlite(rt.engine, n_tasks, clocks=True)
    print(json.dumps({"phase": "load", "tasks": n_tasks, "seconds": round(seconds, 1),
                      "load_1m": round(os.getloadavg()[0], 1)}), flush=True)


def work_pages(runs: int, n_tasks: int) -> None:
    from benchmarks.queue_bench import agent

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", queues=QueueSettings(max_active_per_agent=1_000_000))
        rt = open_runtime(settings)
        _load_tasks(rt, n_tasks)
        from benchmarks.queue_bench import fold_all

        fold_all(settings.db_url)  # the bulk load's triggers wrote one count change per task; serve's clock loop folds
        reader, clicker = agent(0), agent(1)  # four teams each: 8 of the 20 queues
        with rt.sessions() as s, s.begin():
            for who in (reader, clicker):
                users.add_user(s, name=who.name, role="agent", teams=list(who.teams))
                set_password(s, name=who.name, password=PASSWORD)
            users.add_user(s, name="sue", role="supervisor")
            set_password(s, name="sue", password=PASSWORD)
        client, csrf = _client(rt, reader.name)
        for _ in range(5):  # my work shows what the agent holds
            assert client.post("/work/next", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
        queue = "q00"  # team t0's, one of the reader's
        first = client.get(f"/queues/{queue}").text
        after = re.search(r'href="(/queues/[^"]+\?after=[^"]+)" rel="next"', first)
        assert after, "the queue has a second page"
        pages = {"my work (start page)": "/", f"queue {queue}, first 50": f"/queues/{queue}",
                 f"queue {queue}, second 50": after.group(1).replace("&amp;", "&"),
                 "case list (/cases), first 50": "/cases",
                 "case list, active, most urgent first": "/cases?status=active&sort=urgency",
                 "case list, owned by me": "/cases?owner=me"}
        for name, path in pages.items():
            def ask(path: str = path) -> None:
                assert client.get(path).status_code == 200, path
            _measure(name, runs, ask, tasks=n_tasks)
        boss, _ = _client(rt, "sue")

        def dashboard() -> None:
            assert boss.get("/supervisor").status_code == 200
        _measure("supervisor dashboard (20 queues)", max(20, runs // 4), dashboard, tasks=n_tasks)

        clicks, _ = _client(rt, clicker.name)
        token = re.search(r'name="csrf_token" value="([^"]+)"', clicks.get("/").text)
        assert token
        posts: list[float] = []
        pages_ms: list[float] = []
        totals: list[float] = []
        for n in range(runs + 10):
            start = time.perf_counter()
            r = clicks.post("/work/next", data={"csrf_token": token.group(1)}, follow_redirects=False)
            mid = time.perf_counter()
            assert r.status_code == 303 and "/cases/" in r.headers["location"], r.text
            assert clicks.get(r.headers["location"]).status_code == 200
            end = time.perf_counter()
            if n >= 10:  # warm-up
                posts.append((mid - start) * 1000)
                pages_ms.append((end - mid) * 1000)
                totals.append((end - start) * 1000)
        _report("get-next: POST /work/next", posts, tasks=n_tasks)
        _report("get-next: the case page it opens", pages_ms, tasks=n_tasks)
        _report("get-next click to a rendered case page", totals, tasks=n_tasks)
        rt.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("timeline", "work", "all"), default="all")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.part in ("timeline", "all"):
        timeline_pages(args.runs)
    if args.part in ("work", "all"):
        work_pages(args.runs, args.tasks)


if __name__ == "__main__":
    main()
