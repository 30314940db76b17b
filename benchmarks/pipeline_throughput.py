"""End-to-end items/s for small born-digital emails: publish, extract, classify, file.

    python -m benchmarks.pipeline_throughput [--items 2000] [--kafka HOST:PORT --db URL]

Embedded default: every stage in this process (as `casework ingest` runs them). With --kafka
and --db, three `casework worker` processes run the stages and this process only publishes and
waits (as a production deployment would). Prints one JSON line; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api.ingest_run import run_ingest
from api.settings import Settings
from api.wiring import open_runtime
from casestore import cases, customers

N_CUSTOMERS = 200


def make_emails(folder: Path, n: int, run_id: str) -> None:
    for i in range(n):
        c = i % N_CUSTOMERS
        body = (f"Dear team,\r\nI am writing about my case CM-2025-{c:06d}. The delivery is late again "
                f"and I would like an update on when it will arrive.\r\nKind regards,\r\nCustomer {c}\r\n")
        (folder / f"{i:06d}.eml").write_bytes(
            (f"From: Customer {c} <customer{c}@example.com>\r\nTo: cases@casework.example\r\n"
             f"Subject: Re: CM-2025-{c:06d} update please\r\nMessage-ID: <{run_id}.{i}@example.com>\r\n"
             f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
             f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode())


def _live_children_cpu_s() -> float:
    """CPU seconds of this process's children that still run (the multiprocessing forkserver)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # ppid; utime and stime are fields 14 and 15 of stat
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--kafka", default="", help="bootstrap HOST:PORT; runs the stages in worker processes")
    ap.add_argument("--db", default="", help="SQLAlchemy URL of the store (default: SQLite in a temp dir)")
    ap.add_argument("--stages", choices=["auto", "threads", "processes"], default="auto",
                    help="embedded default: stages as threads (per-stage CPU is reported) or processes")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        env = {"CASEWORK_DATA_DIR": str(data_dir)}
        if args.kafka:
            env["CASEWORK_BUS__URL"] = f"kafka://{args.kafka}"
        if args.db:
            env["CASEWORK_DB__URL"] = args.db
        env["CASEWORK_WORKER__STAGE_PROCESSES"] = args.stages
        os.environ.update(env)
        settings = Settings()
        rt = open_runtime(settings)
        with rt.sessions() as s, s.begin():
            for c in range(N_CUSTOMERS):
                customers.upsert_customer(s, customer_id=f"B-{c}", name=f"Customer {c}",
                                          email=f"customer{c}@example.com")
                cases.upsert_case(s, ref=f"CM-2025-{c:06d}", customer_id=f"B-{c}", case_type="complaint",
                                  status="open", opened_at=None, subject="late delivery")
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        make_emails(inbox, args.items, run_id=str(time.time_ns()))
        workers: list[subprocess.Popen[bytes]] = []
        if args.kafka:
            for stage in ("extract", "classify", "file"):
                workers.append(subprocess.Popen([sys.executable, "-m", "api", "worker", stage],
                                                env={**os.environ, **env}, stdout=subprocess.DEVNULL))
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load0 = os.getloadavg()[0]
        stage_cpu: dict[str, float] = {}
        try:
            report = run_ingest(rt, [inbox], timeout=1800, stage_cpu=stage_cpu)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
            rt.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # stage processes, once joined
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    kids_s = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    in_processes = not args.kafka and (args.stages == "processes" or (
        args.stages == "auto" and args.items >= settings.worker.process_threshold))
    if in_processes:  # forkserver children report their own CPU; the server's start-up counts too
        kids_s += sum(stage_cpu.values()) + _live_children_cpu_s()
    counts = report.counts()
    shape = "kafka+postgresql" if args.kafka else "embedded (sqlite log + sqlite store)"
    print(json.dumps({"benchmark": "pipeline_throughput", "shape": shape, "items": args.items,
                      "seconds": round(report.seconds, 2), "items_per_s": round(args.items / report.seconds, 1),
                      "cpu_ms_per_item": round(1000 * (cpu_s + kids_s) / args.items, 2),
                      "two_core_ceiling_items_per_s": round(2 * args.items / (cpu_s + kids_s), 1),
                      "stage_cpu_ms_per_item": {k: round(1000 * v / args.items, 2) for k, v in stage_cpu.items()},
                      "loadavg_at_start": round(load0, 2), "counts": counts, "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
