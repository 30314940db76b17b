"""Search latency while 20 clients upload (issue 15.12), against a real ``casework serve``.

    python -m benchmarks.search_under_load [--seed-docs 1000] [--seconds 30] [--uploaders 20]
                                           [--searchers 4] [--py-spy FILE] [--keep DIR]

A fresh data directory, ``casework serve`` started as a child process (the embedded default:
SQLite, the SQLite bus, Tantivy, every stage in its own process), users and tokens made first
in the store.  Then, all over HTTP with httpx:

1. seed: ``--seed-docs`` uploads of ~100-word text documents (20 at a time), waited for until
   search finds them all;
2. ``idle``: 200 searches one after another, nothing else running, then 200 uploads one after
   another (the API process's CPU per search and per upload: steadier than times on a busy machine);
3. ``load``: for ``--seconds``, ``--uploaders`` clients upload without pause (each waits for
   its answer, then sends the next) while ``--searchers`` clients, in a process of their own,
   search without pause: 1-3
   word queries as an agent of one team (so the permission filter applies), 20 hits with
   facets and snippets, as the workbench asks.

Prints one JSON line per phase: uploads accepted per second, upload p50/p95, search
p50/p95/p99 (ms), the 1-minute load average at start and end (the machine is shared), and the
CPU seconds the API process and its stage processes used during the load phase.
``--py-spy FILE`` records the server during the load phase (``py-spy record --idle``, raw
collapsed stacks: every thread, waiting included, which is what a blocked event loop looks
like).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from api.settings import Settings
from api.wiring import open_runtime
from benchmarks.search_bench import TextGen, vocabulary
from casestore import users

N_TEAMS = 10


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def load() -> float:
    return round(os.getloadavg()[0], 2)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def make_tokens(data_dir: Path) -> tuple[str, str, str]:
    """(uploader, searcher, supervisor) bearer tokens, written to the store before serve starts."""
    rt = open_runtime(Settings(data_dir=data_dir))
    try:
        with rt.sessions() as s, s.begin():
            users.add_user(s, name="robot", role="integration", teams=[f"t{i}" for i in range(N_TEAMS)])
            users.add_user(s, name="alice", role="agent", teams=["t1"])
            users.add_user(s, name="sue", role="supervisor")
            return (users.create_token(s, name="robot"), users.create_token(s, name="alice"),
                    users.create_token(s, name="sue"))
    finally:
        rt.close()


class Workload:
    def __init__(self, base: str, tokens: tuple[str, str, str], words: list[str]) -> None:
        self.base = base
        self.upload_headers = {"Authorization": f"Bearer {tokens[0]}"}
        self.search_headers = {"Authorization": f"Bearer {tokens[1]}"}
        self.admin_headers = {"Authorization": f"Bearer {tokens[2]}"}
        self.gen = TextGen(words, seed=23)
        self.query_words = words[20:2000]  # not the commonest words, not the rarest
        self.rnd = random.Random(5)
        self.sent = 0

    async def upload(self, client: httpx.AsyncClient) -> float:
        self.sent += 1
        n = self.sent
        body = f"Letter {n}\n\n{self.gen.text()}\n".encode()
        meta = json.dumps({"subject": f"letter {n}", "team": f"t{n % N_TEAMS}"})
        started = time.perf_counter()
        r = await client.post(f"{self.base}/api/v1/items", headers=self.upload_headers,
                              files={"file": (f"letter-{n}.txt", body, "text/plain")},
                              data={"channel": "api", "metadata": meta})
        r.raise_for_status()
        return time.perf_counter() - started

    async def search(self, client: httpx.AsyncClient) -> float:
        q = " ".join(self.rnd.sample(self.query_words, self.rnd.randint(1, 3)))
        started = time.perf_counter()
        r = await client.get(f"{self.base}/api/v1/search", headers=self.search_headers, params={"q": q})
        r.raise_for_status()
        return time.perf_counter() - started

    async def indexed(self, client: httpx.AsyncClient) -> int:
        r = await client.get(f"{self.base}/api/v1/search", headers=self.admin_headers,
                             params={"limit": 0})
        r.raise_for_status()
        return int(r.json()["total"])


async def seed(w: Workload, n: int, uploaders: int) -> None:
    limits = httpx.Limits(max_connections=uploaders + 8)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.monotonic()
        remaining = n

        async def one() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await w.upload(client)

        await asyncio.gather(*(one() for _ in range(uploaders)))
        deadline = time.monotonic() + 600
        while (found := await w.indexed(client)) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {found} of {n} seeded documents searchable after 600 s")
            await asyncio.sleep(0.5)
        emit(phase="seed", docs=n, seconds=round(time.monotonic() - started, 1), searchable=found)


async def idle(w: Workload, n: int, server_pid: int) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(10):
            await w.search(client)  # warm
        cpu_start = cpu_seconds(server_pid)
        times = [await w.search(client) for _ in range(n)]
        cpu_searches = cpu_seconds(server_pid) - cpu_start
        cpu_start = cpu_seconds(server_pid)
        for _ in range(n):
            await w.upload(client)
        cpu_uploads = cpu_seconds(server_pid) - cpu_start
    emit(phase="idle", searches=n, search_p50_ms=pct(times, 50), search_p95_ms=pct(times, 95),
         search_p99_ms=pct(times, 99), api_cpu_ms_per_search=round(cpu_searches / n * 1000, 2),
         api_cpu_ms_per_upload=round(cpu_uploads / n * 1000, 2), load=load())


def searcher_process(base: str, tokens: tuple[str, str, str], seconds: float, searchers: int) -> list[float]:
    """The searchers, in a process of their own: the uploaders' client work (multipart bodies for
    20 clients) does not delay their clocks."""

    async def run() -> list[float]:
        w = Workload(base, tokens, vocabulary())
        times: list[float] = []
        end = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=searchers + 2)) as client:

            async def searcher() -> None:
                while time.monotonic() < end:
                    try:
                        times.append(await w.search(client))
                    except httpx.TransportError:  # counted as a very slow search, not a crash
                        times.append(float("inf"))

            await asyncio.gather(*(searcher() for _ in range(searchers)))
        return times

    return asyncio.run(run())


async def under_load(w: Workload, tokens: tuple[str, str, str], seconds: float, uploaders: int, searchers: int,
                     server_pid: int) -> None:
    limits = httpx.Limits(max_connections=uploaders + 8)
    uploads: list[float] = []
    errors = 0
    load_start = load()
    cpu_start = tree_cpu(server_pid)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            await w.indexed(client)  # the pool's process is starting meanwhile
            end = time.monotonic() + seconds

            async def uploader() -> None:
                nonlocal errors
                while time.monotonic() < end:
                    try:
                        uploads.append(await w.upload(client))
                    except httpx.TransportError:  # a kept-alive connection the server closed as it was reused
                        errors += 1

            started = time.monotonic()
            searching = asyncio.wrap_future(pool.submit(searcher_process, w.base, tokens, seconds, searchers))
            await asyncio.gather(*(uploader() for _ in range(uploaders)))
            wall = time.monotonic() - started
            searches = await searching
            cpu_end = tree_cpu(server_pid)
            indexed = await w.indexed(client)
    emit(phase="load", seconds=round(wall, 1), uploaders=uploaders, searchers=searchers,
         uploads=len(uploads), upload_transport_errors=errors, uploads_per_s=round(len(uploads) / wall, 1),
         upload_p50_ms=pct(uploads, 50), upload_p95_ms=pct(uploads, 95),
         searches=len(searches), search_p50_ms=pct(searches, 50), search_p95_ms=pct(searches, 95),
         search_p99_ms=pct(searches, 99), searchable_at_end=indexed, load_start=load_start, load_end=load(),
         api_cpu_s=round(cpu_end["api"] - cpu_start["api"], 1),
         stages_cpu_s=round(cpu_end["stages"] - cpu_start["stages"], 1),
         api_cpu_ms_per_request=round((cpu_end["api"] - cpu_start["api"]) / max(1, len(uploads) + len(searches))
                                      * 1000, 2))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds of ``casework serve`` (the API process) and of all its descendants (stages)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    below, todo = 0.0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        below += cpu_seconds(pid)
        todo += children.get(pid, [])
    return {"api": cpu_seconds(root), "stages": below}


def wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"casework serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("casework serve did not answer /health within 60 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-docs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--uploaders", type=int, default=20)
    ap.add_argument("--searchers", type=int, default=4)
    ap.add_argument("--py-spy", type=Path, default=None, help="record the server during the load phase")
    ap.add_argument("--py-spy-gil", action="store_true", help="only samples of the thread holding the GIL "
                    "(who keeps the interpreter busy) instead of every thread, waiting included")
    ap.add_argument("--keep", type=Path, default=None, help="data directory to use and keep (default: a temp one)")
    args = ap.parse_args()

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="cw-search-load-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens = make_tokens(data_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CASEWORK_DATA_DIR": str(data_dir), "OMP_THREAD_LIMIT": "1"}
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_up(base, proc)
        w = Workload(base, tokens, vocabulary())
        asyncio.run(seed(w, args.seed_docs, args.uploaders))
        asyncio.run(idle(w, 200, proc.pid))
        if args.py_spy:
            mode = "--gil" if args.py_spy_gil else "--idle"
            spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
                                    "record", mode, "-r", "50", "-f", "raw", "-o", str(args.py_spy),
                                    "-d", str(int(args.seconds)), "-p", str(proc.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        asyncio.run(under_load(w, tokens, args.seconds, args.uploaders, args.searchers, proc.pid))
        if spy is not None:
            spy.wait(60)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
