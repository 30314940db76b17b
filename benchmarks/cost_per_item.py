"""CPU per item of every process on the production shape beside the embedded default (issue 13).

    python -m benchmarks.cost_per_item [--items 2000] [--workers 1,2,3] [--pg postgresql+psycopg://...]

Runs the product's own commands on the same generated emails (replies quoting open cases):

* embedded default: `casework ingest DIR --json` alone (SQLite log and store, stages as child
  processes of the ingest);
* production shape, for each worker count W: a Tansu broker (the test broker, in memory), a fresh
  PostgreSQL database, W `casework worker STAGE` processes per stage, then the same
  `casework ingest DIR --json`, which publishes and waits for the outcomes.

Each process's CPU (user + system, from /proc/PID/stat) is sampled every 50 ms; a worker's
start-up (imports, joining its group) is taken off by reading its CPU once it is idle before the
ingest starts, and reported apart. The broker's CPU and that of the PostgreSQL backends serving
the run's database (pids from pg_stat_activity) are reported beside casework's but not in its
total. Prints one JSON object per configuration; figures go to BENCHMARKS.md.

The project's modules are compiled to bytecode first, as `pip install` does for an installed
casework (and the Docker image): a checkout run with PYTHONDONTWRITEBYTECODE=1, as on the project's
machines, otherwise compiles ~160 modules from source in every process it starts (~0.3 s CPU each).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from benchmarks.pipeline_throughput import N_CUSTOMERS, make_emails

TICK = os.sysconf("SC_CLK_TCK")
CASEWORK = [sys.executable, "-m", "api"]


def cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of ``pid``."""
    out: dict[int, float] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by native id, from ``py-spy dump`` (empty when py-spy is not there)."""
    spy = Path(sys.executable).with_name("py-spy")
    try:
        out = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    names: dict[int, str] = {}
    for line in out.splitlines():
        if line.startswith("Thread ") and '"' in line:
            tid = line.split()[1]
            if tid.isdigit():
                names[int(tid)] = line.split('"')[1]
    return names


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


class Sampler:
    """The latest CPU seconds of each watched pid (and its descendants, for a process tree)."""

    def __init__(self) -> None:
        self.latest: dict[int, float] = {}
        self.label: dict[int, str] = {}
        self.trees: dict[int, str] = {}
        self.threads: dict[int, dict[int, float]] = {}  # pid -> tid -> latest CPU s (``--threads``)
        self.per_thread = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, pid: int, label: str, *, tree: bool = False) -> None:
        self.label[pid] = label
        if tree:
            self.trees[pid] = label
        self.sample_one(pid)

    def sample_one(self, pid: int) -> None:
        value = cpu_s(pid)
        if value is not None:
            self.latest[pid] = value
            if self.per_thread:
                self.threads.setdefault(pid, {}).update(thread_cpu_s(pid))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for root, label in list(self.trees.items()):
                stack = [root]
                while stack:
                    for child in children_of(stack.pop()):
                        self.label.setdefault(child, f"{label}/child")
                        stack.append(child)
            for pid in list(self.label):
                self.sample_one(pid)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def snapshot(self) -> dict[int, float]:
        for pid in list(self.label):
            self.sample_one(pid)
        return dict(self.latest)


def settle(pids: list[int], quiet_s: float = 1.5, timeout: float = 120.0) -> None:
    """Wait until the processes stop burning CPU (started, joined their groups)."""
    deadline = time.monotonic() + timeout
    last = {p: cpu_s(p) or 0.0 for p in pids}
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = {p: cpu_s(p) or 0.0 for p in pids}
        if sum(now.values()) - sum(last.values()) > 0.05:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        last = now


def seed(env: dict[str, str]) -> None:
    rows = ["customer_id,name,email"] + [f"B-{c},Customer {c},customer{c}@example.com" for c in range(N_CUSTOMERS)]
    cases = ["ref,customer_id,case_type,status,opened_at,subject"] + [
        f"CM-2025-{c:06d},B-{c},complaint,open,2025-03-01T09:00:00Z,late delivery" for c in range(N_CUSTOMERS)]
    where = Path(env["CASEWORK_DATA_DIR"]).parent
    (where / "customers.csv").write_text("\n".join(rows) + "\n")
    (where / "cases.csv").write_text("\n".join(cases) + "\n")
    for kind in ("customers", "cases"):
        subprocess.run([*CASEWORK, "import", kind, str(where / f"{kind}.csv")], env=env, check=True,
                       capture_output=True)


def pg_backend_pids(url: str) -> list[int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            name = make_url(url).database
            return [int(r[0]) for r in conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})]
    finally:
        engine.dispose()


def run_config(items: int, inbox: Path, base_env: dict[str, str], *, workers: int, kafka: str,
               pg_url: str, broker_pid: int | None, threads: bool = False) -> dict[str, Any]:
    env = dict(base_env)
    with tempfile.TemporaryDirectory() as tmp:
        env["CASEWORK_DATA_DIR"] = str(Path(tmp) / "data")
        if kafka:
            env.update({"CASEWORK_BUS__URL": f"kafka://{kafka}", "CASEWORK_DB__URL": pg_url,
                        "CASEWORK_BUS__SESSION_TIMEOUT_MS": "6000", "CASEWORK_BUS__HEARTBEAT_INTERVAL_MS": "2000"})
        seed(env)
        sampler = Sampler()
        sampler.per_thread = threads
        procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        startup: dict[str, float] = {}
        try:
            for stage in ("extract", "classify", "file") if kafka else ():
                for n in range(workers):
                    p = subprocess.Popen([*CASEWORK, "worker", stage], env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                    procs.append((f"{stage}#{n + 1}", p))
            settle([p.pid for _, p in procs])
            for label, p in procs:
                sampler.watch(p.pid, label)
                startup[label] = sampler.latest.get(p.pid, 0.0)
            if broker_pid:
                sampler.watch(broker_pid, "broker")
            pg_pids = pg_backend_pids(pg_url) if kafka else []
            for pid in pg_pids:
                sampler.watch(pid, "postgres")
            idle: dict[str, float] = {}
            if threads and procs:  # what the idle workers burn per second of wall time (polls, heartbeats)
                at = {label: cpu_s(p.pid) or 0.0 for label, p in procs}
                time.sleep(5.0)
                idle = {label: round(((cpu_s(p.pid) or 0.0) - at[label]) / 5.0, 4) for label, p in procs}
            before = sampler.snapshot()
            threads_before = {pid: dict(t) for pid, t in sampler.threads.items()}
            sampler.start()
            load0 = os.getloadavg()[0]
            started = time.monotonic()
            ingest = subprocess.Popen([*CASEWORK, "ingest", str(inbox), "--json", "--timeout", "1800"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            sampler.watch(ingest.pid, "ingest", tree=True)
            out, _ = ingest.communicate()
            seconds = time.monotonic() - started
            for pid in pg_backend_pids(pg_url) if kafka else []:  # connections opened during the run
                if pid not in sampler.label:
                    sampler.watch(pid, "postgres")
                    before.setdefault(pid, 0.0)
            after = sampler.snapshot()
            sampler.stop()
            per_thread: dict[str, dict[str, float]] = {}
            watched = [*procs, ("ingest", ingest)] if threads else []
            for label, p in watched:
                names = thread_names(p.pid) if p.poll() is None else {}  # the ingest has ended: by number
                used: dict[str, float] = {}
                for tid, value in sampler.threads.get(p.pid, {}).items():
                    name = names.get(tid, "main" if tid == p.pid else f"tid {tid} (ended or native)")
                    used[name] = used.get(name, 0.0) + value - threads_before.get(p.pid, {}).get(tid, 0.0)
                per_thread[label] = {k: round(1000 * v / items, 3) for k, v in sorted(used.items()) if v > 0}
        finally:
            for _, p in procs:
                p.terminate()
            for _, p in procs:
                p.wait(60)
    report = json.loads(out)
    per: dict[str, float] = {}
    for pid, label in sampler.label.items():
        used = after.get(pid, 0.0) - before.get(pid, 0.0)
        key = "ingest" if label.startswith("ingest") else label
        per[key] = per.get(key, 0.0) + used
    outside = {k: per.pop(k) for k in ("broker", "postgres") if k in per}
    total = sum(per.values())
    ms = lambda s: round(1000 * s / items, 3)  # noqa: E731
    return {
        "benchmark": "cost_per_item", "shape": f"kafka+postgresql, {workers} worker(s) per stage" if kafka
        else "embedded default", "items": items, "seconds": round(seconds, 1),
        "casework_cpu_ms_per_item": ms(total),
        "per_process_ms_per_item": {k: ms(v) for k, v in sorted(per.items())},
        "not_counted_ms_per_item": {k: ms(v) for k, v in outside.items()},
        "worker_startup_cpu_s": {k: round(v, 2) for k, v in startup.items()},
        "counts": {k: report[k] for k in ("attached", "new_case", "triage", "noise", "failed")},
        "loadavg_at_start": round(load0, 2),
        **({"idle_cpu_s_per_s": idle, "per_thread_ms_per_item": per_thread} if threads else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--workers", default="1,2,3", help="workers per stage on Kafka, comma-separated")
    ap.add_argument("--pg", default=os.environ.get("CASEWORK_TEST_PG_URL",
                                                   "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--skip-embedded", action="store_true")
    ap.add_argument("--threads", action="store_true",
                    help="also each worker's CPU per thread (named by py-spy) and its idle CPU per second")
    args = ap.parse_args()
    from tests.kafka_broker import running_broker

    root = Path(__file__).resolve().parents[1]
    for package in ("api", "casestore", "classify", "connectors", "ingest"):
        compileall.compile_dir(root / package, quiet=1)

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    base_env["OMP_THREAD_LIMIT"] = "1"
    admin = create_engine(make_url(args.pg), isolation_level="AUTOCOMMIT")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        make_emails(inbox, args.items, run_id=str(time.time_ns()))
        if not args.skip_embedded:
            print(json.dumps(run_config(args.items, inbox, base_env, workers=0, kafka="", pg_url="",
                                        broker_pid=None)), flush=True)
        for workers in [int(w) for w in args.workers.split(",") if w]:
            broker_dir = Path(tmp) / f"tansu-{workers}"
            broker_dir.mkdir()
            with running_broker(broker_dir) as address:
                broker_pid = next((int(p.name) for p in Path("/proc").glob("[0-9]*")
                                   if (p / "cmdline").exists() and address.split(":")[1] in
                                   (p / "cmdline").read_bytes().decode(errors="replace")), None)
                name = f"casework_bench_{secrets.token_hex(4)}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
                try:
                    print(json.dumps(run_config(args.items, inbox, base_env, workers=workers, kafka=address,
                                                pg_url=url, broker_pid=broker_pid, threads=args.threads)), flush=True)
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        stack.close()
    admin.dispose()


if __name__ == "__main__":
    main()
