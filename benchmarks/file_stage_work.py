"""What case work adds to the file stage: CPU ms per item of the batch filing path
(``casestore.filing.file_items``, batches of 500) with and without the work hooks.

    python -m benchmarks.file_stage_work [--items 3000] [--new] [--no-work] [--db URL]

200 imported complaint cases (the shipped definitions and calendars).  By default every item is a
reply quoting one of them (``attached``: the complaint type records the reply, raises urgency by 5
and enables its review task when none waits); ``--new`` files items that each open a new case
(which then starts its work).  Prints one JSON line; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from api.settings import DbSettings, Settings
from api.wiring import open_runtime
from casestore import cases, customers
from casestore.filing import Filing, file_items
from casestore.items import NewCase, NewDocument, NewItem
from casestore.work.inbound import InboundWork, start_imported

N_CASES = 200
BATCH = 500


def _filing(n: int, new: bool) -> Filing:
    key = f"email:{uuid.uuid4()}"
    item = NewItem(item_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)), idempotency_key=key, channel="email",
                   received_at=datetime.now(UTC), source="bench", filename=None, blob_sha256=None,
                   content_type="text/plain", size=100, metadata={}, sender="x@example.com", subject="Re")
    doc = NewDocument(part_index=0, kind="body", title="body", filename=None, content_type="text/plain",
                      blob_sha256=None, text="hello", fields={})
    if new:
        opened = NewCase(customer_id=f"C{n % N_CASES}", case_type="complaint", subject="s", team="complaints")
        return Filing(item, [doc], "new_case", None, opened, "complaint", {"reason": "new"})
    return Filing(item, [doc], "attached", f"CM-{n % N_CASES:06d}", None, "complaint", {"reason": "ref"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--new", action="store_true", help="items that open new cases")
    ap.add_argument("--no-work", action="store_true", help="file without the work hooks (the baseline)")
    ap.add_argument("--db", default="", help="SQLAlchemy URL of an empty store (default: SQLite in a temp dir)")
    args = ap.parse_args()
    rt = open_runtime(Settings(data_dir=Path(tempfile.mkdtemp()) / "data", db=DbSettings(url=args.db)))
    setup = rt.work
    with rt.sessions() as s, s.begin():
        for i in range(N_CASES):
            customers.upsert_customer(s, customer_id=f"C{i}", name=f"Customer {i}", email=f"c{i}@example.com")
            case, _ = cases.upsert_case(s, ref=f"CM-{i:06d}", customer_id=f"C{i}", case_type="complaint",
                                        team="complaints")
            start_imported(s, case=case, setup=setup)
    hooks = None if args.no_work else InboundWork(setup)
    cpu = wall = 0.0
    for start in range(0, args.items, BATCH):
        filings = [_filing(n, args.new) for n in range(start, min(start + BATCH, args.items))]
        c0, w0 = time.process_time(), time.perf_counter()
        with rt.sessions() as s, s.begin():
            file_items(s, filings=filings, actor="pipeline", work=hooks)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    rt.close()
    print(json.dumps({"items": args.items, "kind": "new_case" if args.new else "attached", "work": hooks is not None,
                      "cpu_ms_per_item": round(cpu / args.items * 1000, 3),
                      "wall_ms_per_item": round(wall / args.items * 1000, 3), "db": args.db or "sqlite"}))


if __name__ == "__main__":
    main()
