"""Recovery after `kill -9` of `casework ingest`, as an operator meets it (issue 15.3).

    python -m benchmarks.crash_recovery [--items 2000] [--at 0.3]

Runs `casework ingest DIR --json` on small emails once to completion (the normal time), then in
a fresh data directory starts it again, kills it with SIGKILL when `--at` of the items are filed
(read from the store), and times the re-run of the same command until it reports every item.
Checks that every item is filed exactly once.  Prints one JSON line; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.pipeline_throughput import make_emails


def ingest(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "api", "ingest", str(folder), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def filed(data: Path) -> int:
    try:
        with sqlite3.connect(data / "casework.db", timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--at", type=float, default=0.3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="casework-crash-") as tmp:
        base = Path(tmp)
        folder = base / "mail"
        folder.mkdir()
        make_emails(folder, args.items, run_id=str(os.getpid()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}

        env["CASEWORK_DATA_DIR"] = str(base / "normal")
        started = time.perf_counter()
        normal = ingest(env, folder)
        normal.communicate()
        normal_s = time.perf_counter() - started

        data = base / "crashed"
        env["CASEWORK_DATA_DIR"] = str(data)
        victim = ingest(env, folder)
        while filed(data) < args.at * args.items and victim.poll() is None:
            time.sleep(0.05)
        at_kill = filed(data)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        started = time.perf_counter()
        rerun = ingest(env, folder)
        out, _ = rerun.communicate()
        rerun_s = time.perf_counter() - started
        report = json.loads(out)
        with sqlite3.connect(data / "casework.db") as conn:
            items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            docs = conn.execute("SELECT count(*), count(DISTINCT item_id) FROM documents").fetchone()
        print(json.dumps({"items": args.items, "normal_s": round(normal_s, 1), "filed_at_kill": at_kill,
                          "rerun_s": round(rerun_s, 1), "rerun_failed": report.get("failed"),
                          "items_filed": items, "documents": docs[0], "distinct_document_items": docs[1]}))


if __name__ == "__main__":
    main()
