"""Work-queue and clock-loop benchmarks over the product path: get-next and complete over HTTP
against a real `casework serve`, at a million open tasks; a killed agent's leases; the SLA clock loop
at a million open clocks; a calendar change re-computing running clocks' due times.

    python -m benchmarks.queue_bench --db postgres|sqlite
        [--phases load,counts,open_loop,flat_out,kill,clock,calendar] [--tasks 1000000] [--rate 150]
        [--seconds 30] [--claims 100000] [--processes 2] [--agents-per-process 25] [--servers 1]
        [--calendar-clocks N] [--calendar-batch N] [--calendar-rate CLOCKS_PER_S]
        [--complete] [--profile DIR] [--server-code CHECKOUT]

The data set: one case type with 20 queues (q00..q19, two per team t0..t9); ``--tasks`` open tasks,
two per case (so tasks/2 cases, each with its work row and two running SLA clocks, c0 and c1, due
1 h to 30 days ahead); urgency 0-3, 80 % with a due time; 100 agents (ag000..ag099, each in 4
teams, so each get-next looks at 8 queues) with bearer tokens.  Rows are bulk-loaded (PostgreSQL
``COPY``, SQLite ``executemany``), not through the services; everything timed after that goes
through HTTP.

- ``counts``: ``GET /api/v1/queues`` (every queue's waiting, active, at-risk, breached and oldest
  waiting) as an agent and as a supervisor.
- ``open_loop``: ``casework serve`` (``--servers`` processes on PostgreSQL, one on SQLite) and
  100 simulated agents whose ``POST /api/v1/work/next`` calls arrive at ``--rate`` per second
  (Poisson) for ``--seconds``; latency from the arrival (client queueing included) to the response.
  With ``--complete`` each claimed task is then completed (``POST /api/v1/tasks/{id}/complete``),
  timed separately.  The per-agent cap is raised (agents that only claim keep claiming).
- ``flat_out``: ``--processes`` x ``--agents-per-process`` agents each calling get-next (and
  complete, with ``--complete``) over HTTP as fast as they can until ``--claims`` claims are made;
  claims per second, latency, and double hand-outs counted twice: from the agents' own logs and
  from the audit events.  Before the window the agents' tasks held from earlier runs are marked
  completed and, on PostgreSQL, ``tasks`` is vacuumed (the test server runs without autovacuum), so
  runs on the same data start alike; server and PostgreSQL CPU per call come from /proc.
- ``kill``: an agent process claims 20 tasks of a queue with a 1-minute lease over HTTP and is
  SIGKILLed; `casework worker clock` (interval 5 s) must return them within lease + 60 s.
- ``clock``: a sweep with nothing due (1M open clocks), then 10,000 clocks made due to breach at
  once, each escalating (urgency +5, open tasks moved to another queue, a notify event), swept by
  ``casework worker clock``'s own sweep function in batches with a commit each.
- ``calendar``: a holiday added to the calendar of the running clocks; the re-computation of
  their due times in committed batches (``casework calendar recompute``, ``--rate`` from
  ``--calendar-rate``), timed, while an open loop of get-next runs against the server.  The reset
  before it (every clock and task put back) is vacuumed and checkpointed on PostgreSQL before
  the "before" window is timed.

``--profile DIR`` runs the server under py-spy (``py-spy record``) and leaves raw stacks in DIR
(wall time of every thread; with ``QUEUE_BENCH_PROFILE_GIL=1``, only the thread holding the GIL:
where the server's CPU goes).
The PostgreSQL database is ``casework_bench_queues`` unless ``QUEUE_BENCH_PG_DB`` names another (a
helper sharing the server keeps its own); ``load`` drops and re-creates it.
Prints one JSON line per measurement.  The machine may be shared: each line gives the 1-minute
load average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as stdqueue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, bindparam, create_engine, func, select, text
from sqlalchemy.engine import make_url

from benchmarks.http_agent import LeanClient
from casestore.db import json_dumps, make_engine, session_factory, upgrade
from casestore.models import UTCDateTime
from casestore.work.actor import Actor
from casestore.work.clock_loop import sweep
from casestore.work.models import NO_DUE, SlaClock

PG_ADMIN = os.environ.get("CASEWORK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("QUEUE_BENCH_PG_DB", "casework_bench_queues")  # helpers sharing a server: own name
TEAMS = 10
QUEUES = [f"q{k:02d}" for k in range(20)]
KILL_QUEUE, KILL_TASKS = "q_kill", 200
BIG_CAP = 1_000_000
NOW = datetime.now(UTC).replace(microsecond=0)


def emit(**fields: Any) -> None:
    fields["load_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(fields), flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2) if ordered else 0.0


def definition() -> dict[str, Any]:
    queues_ = [{"name": q, "team": f"t{k // 2}", "lease": "30m"} for k, q in enumerate(QUEUES)]
    queues_ += [{"name": "q_escalated", "team": "seniors", "lease": "30m"},
                {"name": KILL_QUEUE, "team": "tkill", "lease": "1m"}]
    return {
        "name": "bench", "version": 1, "title": "Benchmark",
        "roles": {"agent": ["work_task"], "supervisor": ["work_task", "reassign"]},
        "queues": queues_,
        "clocks": [{"name": "c0", "duration": "5d"}, {"name": "c1", "duration": "10d"}],
        "escalations": [{"clock": "c0", "on": "breach", "actions": [
            {"raise_urgency": 5, "move_to_queue": "q_escalated", "notify_role": "supervisor"}]}],
        "stages": [{"name": "handle", "tasks": [{"name": f"w{j}", "queue": QUEUES[0], "codes": ["done"]}
                                                for j in range(2)]}],
        "completion_codes": ["resolved"],
    }


def agent(i: int) -> Actor:
    return Actor(name=f"ag{i:03d}", role="agent", teams=tuple(f"t{(i + k) % TEAMS}" for k in range(4)))


# -- loading ---------------------------------------------------------------------------------------


def _rows(n_tasks: int, seed: int = 7) -> tuple[Iterable[tuple[Any, ...]], ...]:
    rng = random.Random(seed)
    n_cases = n_tasks // 2

    def cases() -> Iterable[tuple[Any, ...]]:
        for c in range(1, n_cases + 1):
            yield (c, f"B-{c:07d}", "bench", "open", f"case {c}", f"t{c % TEAMS}", False, False, NOW, NOW)
        yield (n_cases + 1, "B-KILL", "bench", "open", "kill test", "tkill", False, False, NOW, NOW)

    def work() -> Iterable[tuple[Any, ...]]:
        for c in range(1, n_cases + 2):
            yield (c, "bench", 1, "handle", "open", 0, NOW, 0)

    def tasks() -> Iterable[tuple[Any, ...]]:
        for c in range(1, n_cases + 1):
            team = c % TEAMS
            for j in range(2):
                urgency = rng.choices((0, 1, 2, 3), weights=(70, 20, 8, 2))[0]
                due = NOW + timedelta(seconds=rng.randrange(3600, 30 * 86400)) if rng.random() < 0.8 else NO_DUE
                created = NOW - timedelta(seconds=rng.randrange(0, 30 * 86400))
                yield (c, "handle", f"w{j}", 1, "queued", QUEUES[2 * team + j], urgency, due, created, "{}", 0)
        for j in range(KILL_TASKS):
            yield (n_cases + 1, "handle", f"k{j}", 1, "queued", KILL_QUEUE, 0, NO_DUE, NOW, "{}", 0)

    def clocks() -> Iterable[tuple[Any, ...]]:
        for c in range(1, n_cases + 1):
            for name in ("c0", "c1"):
                due = NOW + timedelta(seconds=rng.randrange(3600, 30 * 86400))
                warn = due - timedelta(minutes=30)
                yield (c, name, "running", "default", 432000, 0, 75, NOW, NOW, due, warn, warn)

    return cases(), work(), tasks(), clocks()


COLUMNS = {
    "cases": "id, ref, case_type, status, subject, team, restricted, legacy, opened_at, updated_at",
    "case_work": "case_id, case_type, type_version, stage, status, urgency, started_at, reopened",
    "tasks": "case_id, stage, name, iteration, state, queue, urgency, due_at, created_at, checklist, lease_version",
    "sla_clocks": "case_id, name, state, calendar, budget_seconds, used_seconds, warn_percent, started_at, "
                  "resumed_at, due_at, warn_at, next_fire_at",
}


def store_definition(engine: Engine) -> None:
    import hashlib

    value = definition()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO case_type_versions (name, version, digest, definition, source, loaded_at) "
                          "VALUES ('bench', 1, :d, :v, 'bench.yaml', :t)"),
                     {"d": hashlib.sha256(json.dumps(value).encode()).hexdigest(), "v": json.dumps(value), "t": NOW})


def load_postgres(url: str, n_tasks: int) -> None:
    admin = create_engine(make_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
    admin.dispose()
    engine = make_engine(url)
    upgrade(engine)
    store_definition(engine)
    began = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, rows in zip(("cases", "case_work", "tasks", "sla_clocks"), _rows(n_tasks), strict=True):
            t = time.perf_counter()
            with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
            raw.commit()
            emit(phase="load", db="postgres", table=table, seconds=round(time.perf_counter() - t, 1))
        cur.execute("SELECT setval('cases_id_seq', (SELECT max(id) FROM cases))")
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    emit(phase="load", db="postgres", tasks=n_tasks, seconds=round(time.perf_counter() - began, 1))
    engine.dispose()


def load_sqlite(url: str, n_tasks: int) -> None:
    path = Path(make_url(url).database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(url)
    upgrade(engine)
    seconds = bulk_load_sqlite(engine, n_tasks, clocks=True)  # the clock phase runs on SQLite too
    emit(phase="load", db="sqlite", tasks=n_tasks, seconds=round(seconds, 1))
    engine.dispose()


def bulk_load_sqlite(engine: Engine, n_tasks: int, *, clocks: bool) -> float:
    """The data set (cases, their work and tasks; with ``clocks`` their two SLA clocks too) into a
    migrated SQLite store in one transaction of ``executemany``, then ANALYZE; the seconds it took."""
    store_definition(engine)
    began = time.perf_counter()
    cases, work, tasks, sla_clocks = _rows(n_tasks)
    tables = [("cases", cases), ("case_work", work), ("tasks", tasks)]
    if clocks:
        tables.append(("sla_clocks", sla_clocks))
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        for table, rows in tables:
            marks = ", ".join("?" for _ in COLUMNS[table].split(","))
            cur.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})",
                            ([v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in r] for r in rows))
        cur.execute("COMMIT")
        cur.execute("ANALYZE")
    finally:
        raw.close()
    return time.perf_counter() - began


# -- agents, tokens and the server -----------------------------------------------------------------


def make_agents(url: str, tokens_file: Path) -> None:
    """Users ag000..ag099 (and ``doomed`` for the kill phase) with one bearer token each."""
    from casestore import users

    engine = make_engine(url)
    tokens: dict[str, str] = {}
    with session_factory(engine)() as s, s.begin():
        for i in range(100):
            actor = agent(i)
            users.add_user(s, name=actor.name, role="agent", teams=actor.teams)
            tokens[actor.name] = users.create_token(s, name=actor.name)
        users.add_user(s, name="doomed", role="agent", teams=("tkill",))
        tokens["doomed"] = users.create_token(s, name="doomed")
        users.add_user(s, name="sup", role="supervisor", teams=())
        tokens["sup"] = users.create_token(s, name="sup")
    engine.dispose()
    tokens_file.write_text(json.dumps(tokens))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """``n`` `casework serve` processes on the bench database (no pipeline, no clock loop), each on
    its own port; under ``py-spy record`` when ``profile`` names a folder."""

    def __init__(self, url: str, work: Path, n: int, *, profile: Path | None, code: Path | None = None) -> None:
        self.ports = [free_port() for _ in range(n)]
        env = {**os.environ, **({"PYTHONPATH": str(code)} if code is not None else {}),
               "CASEWORK_DATA_DIR": str(work / "data"), "CASEWORK_DB__URL": url,
               "CASEWORK_SERVE__RUN_PIPELINE": "false", "CASEWORK_OUTBOUND__RUN_SENDER": "false",
               "OMP_THREAD_LIMIT": "1"}
        # lift the per-agent cap: agents that only claim keep claiming, and tasks held from earlier
        # runs on the same data do not refuse the agents that complete
        env["CASEWORK_QUEUES__MAX_ACTIVE_PER_AGENT"] = str(BIG_CAP)
        self.logs = [open(work / f"serve-{port}.log", "wb") for port in self.ports]  # noqa: SIM115
        self.procs: list[subprocess.Popen[bytes]] = []
        self.spied = profile is not None
        for port, log in zip(self.ports, self.logs, strict=True):
            cmd = [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port", str(port)]
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
                spy = str(Path(sys.executable).with_name("py-spy"))
                gil = ["--gil"] if os.environ.get("QUEUE_BENCH_PROFILE_GIL") else []  # CPU only: the GIL holder
                cmd = [spy, "record", "-r", "67", *gil, "-f", "raw", "-o", str(profile / f"serve-{port}.txt"), "--",
                       *cmd]
            # cwd: `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH, so a
            # server started from a checkout would run that checkout's code whatever --server-code says
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=str(code) if code is not None else None))
        for port in self.ports:
            self._wait(port)

    @staticmethod
    def _wait(port: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"casework serve on port {port} did not answer /health within 120 s")

    def cpu_seconds(self) -> float:
        """User + system CPU the server processes (not py-spy) have used so far (Linux /proc)."""
        total = 0.0
        for proc in self.procs:
            pids = [proc.pid]
            if self.spied:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                pids = [int(p) for p in children.read_text().split()] if children.exists() else []
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def base(self, k: int) -> str:
        return f"http://127.0.0.1:{self.ports[k % len(self.ports)]}"

    def close(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT if self.spied else signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


class Agent:
    """One agent's HTTP client (keep-alive) for get-next and complete: the lean client of
    ``benchmarks.http_agent``, so the agents' own CPU (they stand for browsers on other machines)
    takes as little as it can of the 2 cores the server and the database share."""

    def __init__(self, base: str, token: str) -> None:
        self.client = LeanClient(base, {"Authorization": f"Bearer {token}"}, timeout=60)

    def next(self) -> int | None:
        task = self.client.call("POST", "/api/v1/work/next")["task"]
        return int(task["id"]) if task is not None else None

    def complete(self, task_id: int) -> None:
        self.client.call("POST", f"/api/v1/tasks/{task_id}/complete", {"code": "done"})

    def close(self) -> None:
        self.client.close()


def load_tokens(work: Path) -> dict[str, str]:
    tokens: dict[str, str] = json.loads((work / "tokens.json").read_text())
    return tokens


# -- open loop -------------------------------------------------------------------------------------


def open_loop(servers: Servers, tokens: dict[str, str], db: str, rate: float, seconds: float, *,
              complete: bool, threads: int = 16, phase: str = "open_loop",
              stop: threading.Event | None = None) -> dict[str, Any]:
    """Poisson arrivals of get-next from 100 agents; each served by a pool of client threads."""
    agents = [Agent(servers.base(i), tokens[agent(i).name]) for i in range(100)]
    for i in range(3):  # warm the server's queue index and connections
        tid = agents[i].next()
        if complete and tid is not None:
            agents[i].complete(tid)
    arrivals: stdqueue.Queue[tuple[float, int] | None] = stdqueue.Queue()
    latencies: list[float] = []
    service: list[float] = []
    completes: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    busy = [threading.Lock() for _ in agents]  # one call at a time per agent, as a person would

    def worker() -> None:
        while (job := arrivals.get()) is not None:
            due, who = job
            with busy[who]:
                start = time.perf_counter()
                tid = None
                try:
                    tid = agents[who].next()
                except Exception as exc:
                    errors.append(type(exc).__name__)
                end = time.perf_counter()
                done = None
                if complete and tid is not None:
                    try:
                        agents[who].complete(tid)
                    except Exception as exc:
                        errors.append("complete:" + type(exc).__name__)
                    done = time.perf_counter() - end
            with lock:
                latencies.append(end - due)
                service.append(end - start)
                if done is not None:
                    completes.append(done)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    cpu_before = servers.cpu_seconds()
    rng = random.Random(1)
    began = time.perf_counter()
    at, calls = began, 0
    while at - began < seconds and not (stop is not None and stop.is_set()):
        at += rng.expovariate(rate)
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        arrivals.put((at, rng.randrange(100)))
        calls += 1
    for _ in pool:
        arrivals.put(None)
    for t in pool:
        t.join()
    wall = time.perf_counter() - began
    server_cpu = servers.cpu_seconds() - cpu_before
    for a in agents:
        a.close()
    result = dict(phase=phase, db=db, servers=len(servers.ports), threads=threads, calls=calls,
                  achieved_per_s=round(calls / wall, 1), errors=len(errors), error_kinds=sorted(set(errors))[:5],
                  p50_ms=pct(latencies, 50), p95_ms=pct(latencies, 95), p99_ms=pct(latencies, 99),
                  max_ms=pct(latencies, 100), service_p50_ms=pct(service, 50), service_p95_ms=pct(service, 95),
                  complete_p50_ms=pct(completes, 50), complete_p95_ms=pct(completes, 95),
                  server_cpu_ms_per_call=round(1000 * server_cpu / max(calls, 1), 2))
    emit(**result)
    return result


# -- flat out --------------------------------------------------------------------------------------


def _flat_out_process(bases: list[str], tokens: dict[str, str], first_agent: int, n_agents: int, claims_each: int,
                      out: str, complete: bool, start: Any) -> None:
    results: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        name = agent(i).name
        client = Agent(bases[i % len(bases)], tokens[name])
        mine = []
        for _ in range(claims_each):
            t = time.perf_counter()
            try:
                tid = client.next()
            except Exception:  # counted as a failed call
                tid = -1
            mine.append((name, tid if tid is not None else 0, time.perf_counter() - t))
            if complete and tid:
                try:
                    client.complete(tid)
                except Exception:
                    mine.append((name, -2, 0.0))
        client.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=run, args=(first_agent + k,)) for k in range(n_agents)]
    start.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Path(out).write_text(json.dumps(results))


def postgres_cpu_seconds() -> float:
    """User + system CPU of this machine's PostgreSQL processes so far (Linux /proc): the live ones,
    and the backends that have exited (their postmaster's children's time).  Every database on the
    server counts (the machine is shared)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text_ = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        name, _, rest = text_.partition("(")[2].rpartition(")")
        if name != "postgres":
            continue
        fields = rest.split()
        total += (int(fields[11]) + int(fields[12])) / tick
        if fields[1] == "1" or Path(f"/proc/{fields[1]}/comm").read_text().strip() != "postgres":  # the postmaster
            total += (int(fields[13]) + int(fields[14])) / tick
    return total


def complete_earlier_claims(url: str) -> None:
    """Mark the tasks the agents still hold from earlier runs completed (in bulk, not timed), so each
    run starts with no agent holding anything.  Agents that only claim, under the lifted cap, kept
    every task: after 520,000 claims on the same data each of the 50 agents held 10,460, and every
    get-next's cap guard counted them (``count(*)`` of the agent's active tasks), which cost
    PostgreSQL 6.7 ms of CPU a claim (session 8).  With the product's cap an agent holds at most 5."""
    began = time.perf_counter()
    engine = make_engine(url)
    with engine.begin() as conn:
        done = conn.execute(text(
            "UPDATE tasks SET state = 'completed', completed_at = :now, completed_by = assignee, "
            "completion_code = 'done', lease_expires_at = NULL WHERE state = 'active' AND assignee LIKE 'ag%'")
            .bindparams(bindparam("now", type_=UTCDateTime())), {"now": datetime.now(UTC)}).rowcount
    engine.dispose()
    emit(phase="complete_earlier_claims", tasks=done, seconds=round(time.perf_counter() - began, 1))


def vacuum_tasks(url: str) -> None:
    """``VACUUM ANALYZE tasks`` before a timed window on PostgreSQL: every claim leaves a dead row
    version and a dead entry at the head of its queue's index, which each later claim's index scan
    steps over.  Autovacuum would clean them up as a run goes; the test server here runs with it
    switched off (``autovacuum = off`` in its CI configuration), so without this each run on the same
    data was slower than the one before (session 8: 380, 320, 250, 207 claims/s in a row, 283,000 dead
    tuples in ``tasks``)."""
    began = time.perf_counter()
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        dead = conn.execute(text("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'tasks'")).scalar()
        conn.execute(text("VACUUM ANALYZE tasks"))
    engine.dispose()
    emit(phase="vacuum", table="tasks", dead_tuples=dead, seconds=round(time.perf_counter() - began, 1))


def flat_out(servers: Servers, tokens: dict[str, str], url: str, processes: int, per_process: int, claims: int, *,
             complete: bool) -> None:
    complete_earlier_claims(url)
    if url.startswith("postgresql"):
        vacuum_tasks(url)
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    claims_each = -(-claims // (processes * per_process))
    bases = [servers.base(k) for k in range(len(servers.ports))]
    outs = [tempfile.mktemp(suffix=".json") for _ in range(processes)]
    procs = [ctx.Process(target=_flat_out_process, args=(bases, tokens, p * per_process, per_process, claims_each,
                                                          outs[p], complete, start)) for p in range(processes)]
    for p in procs:
        p.start()
    time.sleep(5)  # let every process import before the clock starts
    cpu_before, db_before = servers.cpu_seconds(), postgres_cpu_seconds()
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    wall = time.perf_counter() - began
    server_cpu = servers.cpu_seconds() - cpu_before
    db_cpu = postgres_cpu_seconds() - db_before
    rows = [tuple(r) for o in outs for r in json.loads(Path(o).read_text())]
    for o in outs:
        Path(o).unlink()
    ok = [r for r in rows if r[1] > 0]
    ids = [r[1] for r in ok]
    engine = make_engine(url)
    task_id = "details->>'task_id'" if engine.dialect.name == "postgresql" else "json_extract(details, '$.task_id')"
    with engine.connect() as conn:
        audit_doubles = conn.execute(text(
            f"SELECT count(*) FROM (SELECT {task_id} FROM audit_events WHERE action = 'task.claimed' "
            "GROUP BY 1 HAVING count(*) > 1) d")).scalar()
        audit_claims = conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'task.claimed'")).scalar()
    engine.dispose()
    lat = [r[2] for r in rows if r[1] != -2]
    emit(phase="flat_out", db=engine.dialect.name, servers=len(servers.ports), processes=processes,
         agents=processes * per_process, complete=complete, calls=len(lat), claims=len(ok),
         failed=sum(1 for r in rows if r[1] == -1), failed_completes=sum(1 for r in rows if r[1] == -2),
         seconds=round(wall, 1), claims_per_s=round(len(ok) / wall, 1), p50_ms=pct(lat, 50), p95_ms=pct(lat, 95),
         p99_ms=pct(lat, 99), double_handouts_log=len(ids) - len(set(ids)), double_handouts_audit=audit_doubles,
         claimed_events=audit_claims, server_cpu_ms_per_call=round(1000 * server_cpu / max(len(rows), 1), 2),
         db_cpu_ms_per_call=round(1000 * db_cpu / max(len(rows), 1), 2) if url.startswith("postgresql") else None)


# -- queue counts ----------------------------------------------------------------------------------


def fold_all(url: str) -> None:
    """Fold every queue-count delta (the bulk load's triggers wrote one per task)."""
    from casestore.work import queue_counts

    engine = make_engine(url)
    began, total = time.perf_counter(), 0
    while True:
        with session_factory(engine)() as s, s.begin():
            n = queue_counts.fold(s, limit=200_000)
        total += n
        if n == 0:
            break
    engine.dispose()
    emit(phase="fold", folded=total, seconds=round(time.perf_counter() - began, 1))


def counts(servers: Servers, tokens: dict[str, str], db: str, calls: int = 30) -> None:
    """``GET /api/v1/queues`` (waiting, active, at risk, breached, oldest waiting of each queue) as
    an agent (8 queues, the cases of 4 teams) and as a supervisor (every queue, every case)."""
    for who in ("ag000", "sup"):
        if who not in tokens:
            continue
        client = httpx.Client(base_url=servers.base(0), headers={"Authorization": f"Bearer {tokens[who]}"},
                              timeout=120)
        times, total = [], 0
        for _ in range(calls):
            t = time.perf_counter()
            response = client.get("/api/v1/queues")
            response.raise_for_status()
            times.append(time.perf_counter() - t)
            total = sum(q["open"] for q in response.json())
        client.close()
        emit(phase="counts", db=db, who=who, calls=calls, queues=len(response.json()), open_tasks=total,
             p50_ms=pct(times, 50), p95_ms=pct(times, 95), max_ms=pct(times, 100))


# -- a killed agent --------------------------------------------------------------------------------


def _kill_agent(base: str, token: str, n: int, ready: Any) -> None:
    client = Agent(base, token)
    for _ in range(n):
        client.next()
    ready.set()
    time.sleep(3600)


def kill(servers: Servers, tokens: dict[str, str], url: str, data_dir: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_kill_agent, args=(servers.base(0), tokens["doomed"], 20, ready))
    proc.start()
    ready.wait(120)
    claimed_by = time.monotonic()
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join()
    env = {**os.environ, "CASEWORK_DATA_DIR": str(data_dir), "CASEWORK_DB__URL": url,
           "CASEWORK_CLOCK__INTERVAL_S": "5"}
    worker = subprocess.Popen([sys.executable, "-m", "api", "worker", "clock"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = make_engine(url)
    try:
        held = -1
        while time.monotonic() - claimed_by < 60 + 60 + 60:
            with engine.connect() as conn:
                held = conn.execute(text("SELECT count(*) FROM tasks WHERE assignee = 'doomed' "
                                         "AND state = 'active'")).scalar() or 0
            if held == 0:
                break
            time.sleep(0.5)
        back_after = time.monotonic() - claimed_by
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        engine.dispose()
    emit(phase="kill", db=make_url(url).get_backend_name(), tasks=20, lease_s=60, still_held=held,
         returned_after_s=round(back_after, 1), within_lease_plus_60=held == 0 and back_after <= 120)


def open_engine(url: str, pool: int) -> Engine:
    if url.startswith("postgresql"):
        return create_engine(url, json_serializer=json_dumps, pool_size=pool, max_overflow=0)
    return make_engine(url)


# -- the clock loop --------------------------------------------------------------------------------


def _backend_pid(engine: Engine) -> int:
    """The PostgreSQL server process of the engine's one pooled connection (0 on SQLite)."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _pid_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (/proc); 0 when there is none."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clock(url: str, batch: int = 1000) -> None:
    db = "postgres" if url.startswith("postgresql") else "sqlite"
    engine = open_engine(url, 4)
    sessions = session_factory(engine)
    with engine.connect() as conn:
        open_clocks = conn.execute(text("SELECT count(*) FROM sla_clocks WHERE state = 'running'")).scalar()
        first = conn.execute(select(func.min(SlaClock.next_fire_at))).scalar()  # typed: SQLite keeps text
    quiet = first - timedelta(seconds=1)  # a moment at which nothing is due (the data may be hours old)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        with sessions() as s, s.begin():
            assert sweep(s, now=quiet, limit=1000).clocks == 0
        times.append(time.perf_counter() - t)
    emit(phase="clock_idle", db=db, open_clocks=open_clocks, sweeps=len(times),
         p50_ms=pct(times, 50), p95_ms=pct(times, 95), max_ms=pct(times, 100))
    residue = int(time.time()) % 50  # cases not escalated by an earlier run of this phase, very likely
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE sla_clocks SET warned_at = :w, warn_at = :w, due_at = :d, next_fire_at = :d, breached_at = NULL "
            "WHERE name = 'c0' AND case_id IN (SELECT id FROM cases WHERE id % 50 = :k ORDER BY id LIMIT 10000)"),
            {"w": quiet - timedelta(hours=1), "d": quiet - timedelta(seconds=1), "k": residue})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE sla_clocks"))
    engine.dispose()
    engine = open_engine(url, 1)  # one connection: its server process's CPU is the database's share
    sessions = session_factory(engine)
    backend = _backend_pid(engine)
    began, cpu, db_cpu = time.perf_counter(), time.process_time(), _pid_cpu(backend)
    breached = batches = events = 0
    while True:
        with sessions() as s, s.begin():
            result = sweep(s, now=quiet, limit=batch)
        breached += result.breached
        events += result.audit_events
        batches += 1
        if not result.more:
            break
    wall, cpu, db_cpu = time.perf_counter() - began, time.process_time() - cpu, _pid_cpu(backend) - db_cpu
    with engine.connect() as conn:
        moved = conn.execute(text("SELECT count(*) FROM tasks WHERE queue = 'q_escalated' AND case_id % 50 = :k"),
                             {"k": residue}).scalar()
    emit(phase="clock_breach", db=db, batch=batch, breached=breached, batches=batches, audit_events=events,
         tasks_moved=moved, seconds=round(wall, 2), client_cpu_s=round(cpu, 2),
         db_cpu_s=round(db_cpu, 2) if backend else None)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), required=True)
    parser.add_argument("--phases", default="load,counts,open_loop,flat_out,kill,clock,calendar")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=16, help="open loop: client threads serving the arrivals")
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--agents-per-process", type=int, default=25)
    parser.add_argument("--clock-batch", type=int, default=1000, help="clocks per committed sweep batch")
    parser.add_argument("--calendar-clocks", type=int, default=1_000_000, help="clocks the calendar change moves")
    parser.add_argument("--calendar-batch", type=int, default=0,
                        help="clocks per committed recompute batch (0: the command's default for the database)")
    parser.add_argument("--calendar-rate", type=float, default=0.0,
                        help="the recompute's --rate (clocks a second; 0: as fast as it goes)")
    parser.add_argument("--servers", type=int, default=1, help="casework serve processes (PostgreSQL)")
    parser.add_argument("--complete", action="store_true", help="agents complete each task they claim")
    parser.add_argument("--profile", type=Path, default=None, help="run the servers under py-spy, stacks here")
    parser.add_argument("--server-code", type=Path, default=None,
                        help="run the servers from this checkout (say, an older commit's, to compare)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "casework-queue-bench")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.db == "postgres":
        url = make_url(PG_ADMIN).set(database=PG_DB).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{(args.work / 'queues.db').resolve()}"
    tokens_file = args.work / "tokens.json"
    wanted = [name.strip() for name in args.phases.split(",")]
    if "load" in wanted:
        (load_postgres if args.db == "postgres" else load_sqlite)(url, args.tasks)
        fold_all(url)
        make_agents(url, tokens_file)
    servers: Servers | None = None
    if {"open_loop", "flat_out", "kill", "calendar", "counts"} & set(wanted):
        n = args.servers if args.db == "postgres" else 1
        servers = Servers(url, args.work, n, profile=args.profile, code=args.server_code)
    try:
        tokens = load_tokens(args.work) if servers is not None else {}
        phases: dict[str, Callable[[], object]] = {
            "load": lambda: None,
            "open_loop": lambda: open_loop(servers, tokens, args.db, args.rate, args.seconds,  # type: ignore[arg-type]
                                           complete=args.complete, threads=args.threads),
            "flat_out": lambda: flat_out(servers, tokens, url, args.processes,  # type: ignore[arg-type]
                                         args.agents_per_process, args.claims, complete=args.complete),
            "kill": lambda: kill(servers, tokens, url, args.work / "data"),  # type: ignore[arg-type]
            "clock": lambda: clock(url, args.clock_batch),
            "fold": lambda: fold_all(url),
            "counts": lambda: counts(servers, tokens, args.db),  # type: ignore[arg-type]
            "calendar": lambda: calendar_change(servers, tokens, url, args.db, args.work,  # type: ignore[arg-type]
                                                clocks=args.calendar_clocks, rate=args.rate,
                                                batch=args.calendar_batch, pace=args.calendar_rate),
        }
        for name in wanted:
            phases[name]()
    finally:
        if servers is not None:
            servers.close()


RECOMPUTE_APP = "casework-calendar-recompute"


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class BackendCpu:
    """The CPU seconds of the PostgreSQL backends serving one application name (PGAPPNAME), read
    from /proc every 0.2 s while it runs (a backend that exits loses at most its last 0.2 s)."""

    def __init__(self, url: str, application: str) -> None:
        self.engine = create_engine(url, pool_size=1, max_overflow=0)
        self.application = application
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while not self.halt.is_set():
                pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                                    {"a": self.application}).scalars().all()
                for pid in pids:
                    try:
                        cpu = _pid_cpu(pid)
                    except OSError:
                        continue
                    self.first.setdefault(pid, cpu)
                    self.last[pid] = cpu
                self.halt.wait(0.2)

    def stop(self) -> float:
        self.halt.set()
        self.thread.join()
        self.engine.dispose()
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def calendar_change(servers: Servers, tokens: dict[str, str], url: str, db: str, work: Path,
                    clocks: int = 1_000_000, rate: float = 150.0, batch: int = 0, pace: float = 0.0) -> None:
    """``clocks`` running clocks are put on a calendar of their own (``bench_cal``, the default
    calendar's hours, started over the last day), a holiday is added to it, and `casework calendar
    recompute bench_cal` runs while get-next arrives at ``rate`` per second against the server;
    get-next is timed for 20 s before, at the same rate, to compare."""
    import shutil

    from casestore.work.calendar_config import SHIPPED_CALENDARS, load_calendars

    folder = work / "calendars"
    folder.mkdir(exist_ok=True)
    for path in SHIPPED_CALENDARS.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    holiday = (NOW + timedelta(days=(7 - NOW.weekday()) % 7 + 1)).date()  # a Tuesday ahead
    base = (folder / "default.yaml").read_text()
    (folder / "bench_cal.yaml").write_text(base + f"extra_holidays: [{holiday.isoformat()}]\n")
    load_calendars(folder)  # refuse a broken file before timing anything
    engine = make_engine(url)
    # started over the last day, one second apart (86,400 distinct starts, as real clocks have)
    started = ("CAST(:now AS timestamptz) - (id % 86400) * interval '1 second'" if db == "postgres"
               else "strftime('%Y-%m-%d %H:%M:%S', :now, '-' || (id % 86400) || ' seconds') || '.000000'")
    # (SQLite: in the text format the store writes, or the recompute's check of the clock's start, a
    # comparison of that text, finds every clock changed since its plan and moves none)
    chosen = "SELECT id FROM sla_clocks WHERE state = 'running' ORDER BY id LIMIT :n"
    with engine.begin() as conn:  # one pass over the chosen clocks (a million-row UPDATE is minutes under load)
        cut = conn.execute(text(f"SELECT max(id) FROM ({chosen}) x"), {"n": clocks}).scalar() or 0
        # not NOT IN (chosen): a million ids do not fit work_mem, and PostgreSQL then scans them per row
        conn.execute(text("UPDATE sla_clocks SET calendar = 'default' WHERE calendar = 'bench_cal' "
                          "AND (id > :cut OR state <> 'running')"), {"cut": cut})
        # due times as they were before the holiday (a run before this one may have moved them already)
        conn.execute(text(f"UPDATE sla_clocks SET calendar = 'bench_cal', resumed_at = {started}, used_seconds = 0, "
                          f"due_at = :far, warn_at = :far, next_fire_at = :far WHERE id IN ({chosen})"),
                     {"n": clocks, "now": NOW, "far": NOW + timedelta(days=400)})
        # and their cases' open tasks as they were before it, so every run re-times them all
        conn.execute(text("UPDATE tasks SET due_at = :far WHERE state IN ('queued', 'active') AND due_at <> :far "
                          "AND case_id IN (SELECT case_id FROM sla_clocks WHERE calendar = 'bench_cal')"),
                     {"far": NOW + timedelta(days=400)})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if db == "postgres":  # the reset left a million dead row versions in each table: clean them up and
            # write the pages out now, or autovacuum and the checkpoint run during the "before" window (and
            # the recompute's), timing the benchmark's own reset rather than the change (session 7)
            conn.execute(text("VACUUM ANALYZE sla_clocks"))
            conn.execute(text("VACUUM ANALYZE tasks"))
            conn.execute(text("CHECKPOINT"))
        else:
            conn.execute(text("ANALYZE sla_clocks"))
    engine.dispose()
    baseline = open_loop(servers, tokens, db, rate, 20, complete=False, phase="open_loop_before_calendar")
    stop = threading.Event()
    loop: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: loop.update(open_loop(
        servers, tokens, db, rate, 3600, complete=False, phase="open_loop_during_calendar", stop=stop)))
    runner.start()
    time.sleep(3)
    env = {**os.environ, "CASEWORK_DATA_DIR": str(work / "data"), "CASEWORK_DB__URL": url,
           "CASEWORK_WORK__CALENDARS_DIR": str(folder), "PGAPPNAME": RECOMPUTE_APP}
    backends = BackendCpu(url, RECOMPUTE_APP) if db == "postgres" else None
    began, children = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "api", "calendar", "recompute", "bench_cal", "--json",
                           *(["--batch", str(batch)] if batch else []), *(["--rate", str(pace)] if pace else [])],
                          env=env, capture_output=True, text=True, check=False)
    wall, recompute_cpu = time.perf_counter() - began, _children_cpu() - children
    db_cpu = backends.stop() if backends is not None else None
    stop.set()
    runner.join()
    if done.returncode != 0:
        raise RuntimeError(f"casework calendar recompute failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    emit(phase="calendar_change", db=db, holiday=holiday.isoformat(), wall_s=round(wall, 1), pace=pace, **result,
         recompute_cpu_s=round(recompute_cpu, 1), recompute_db_cpu_s=None if db_cpu is None else round(db_cpu, 1),
         get_next_rate=rate, get_next_p95_ms_meanwhile=loop.get("p95_ms"), get_next_p99_ms_meanwhile=loop.get("p99_ms"),
         get_next_p95_ms_before=(baseline or {}).get("p95_ms"), get_next_p99_ms_before=(baseline or {}).get("p99_ms"))


if __name__ == "__main__":
    main()
