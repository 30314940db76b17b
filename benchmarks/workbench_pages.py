"""Server time per workbench page on the embedded default (SQLite, Tantivy), in-process through
the ASGI stack (Starlette's TestClient: no network, no browser).

A case with 500 timeline entries (200 items of two documents each, 200 notes, 100 audit
events) is seeded; each page is asked for ``--runs`` times after a warm-up, as a signed-in agent.

    python -m benchmarks.workbench_pages [--runs 200]

Prints one JSON line per page: median and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from api.app import create_app
from api.settings import Settings
from api.wiring import open_runtime
from casestore import cases, customers, users
from casestore.models import AuditEvent, Document, Item, Note
from casestore.signin.passwords import set_password

REF = "CM-2025-000001"
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        _seed(data_dir)
        rt = open_runtime(Settings(data_dir=data_dir))
        client = TestClient(create_app(rt))
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
        assert token
        client.post("/login", data={"name": "alice", "password": "correct horse battery staple",
                                    "login_token": token.group(1)})
        first = client.get(f"/cases/{REF}").text
        cursor = re.search(r"cursor=([^&\"]+)", first)
        assert cursor
        pages = {"case page (500 entries, first 30)": f"/cases/{REF}",
                 "timeline: load more": f"/cases/{REF}/timeline?cursor={cursor.group(1)}",
                 "document page": "/documents/1", "start": "/", "triage": "/triage", "ops": "/ops"}
        for name, path in pages.items():
            for _ in range(10):
                assert client.get(path).status_code == 200, path
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                client.get(path)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            print(json.dumps({"page": name, "runs": args.runs, "median_ms": round(statistics.median(times), 1),
                              "p95_ms": round(times[int(len(times) * 0.95) - 1], 1)}))
        rt.close()


if __name__ == "__main__":
    main()
