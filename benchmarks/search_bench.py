"""Search benchmarks: indexing throughput on the embedded default and query latency over HTTP.

    python -m benchmarks.search_bench [--docs 1000000] [--osmem-docs 100000] [--batch 10000]
                                      [--queries 500] [--phases index,import,query,osmem]
                                      [--work DIR] [--jsonl FILE]

Documents are ~100 words drawn (Zipf) from a generated 20,000-word vocabulary.

- ``index``: ``TantivyIndex.index`` alone on generated documents; the time to generate them
  is measured apart and not counted (``docs_per_s``), the wall time including it is given too.
- ``import``: ``casework import documents`` end to end (``import_documents``): read the JSON
  Lines file, write items, documents and audit events to SQLite, index the documents.  Writing
  the JSONL file is not counted (``--jsonl FILE`` writes it once and reuses it in later runs).
- ``query``: 1-3 word queries as an agent of one team (so the permission filter applies)
  through ``GET /api/v1/search`` on a uvicorn server on a loopback port, on the imported index;
  the same queries straight on the index for comparison.
- ``osmem``: the same queries on ``--osmem-docs`` documents in osmem-server (the in-memory
  OpenSearch stand-in used by the tests), through the same HTTP API.

Prints one JSON line per measurement.  The machine may be shared: the indexing lines give the
process's CPU seconds (all threads) and the 1-minute load average at start and end, so runs on a
busy machine can be told apart.  ``max_rss_mb`` is the process's peak so far (all phases).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.search_routes import router as search_router
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import users
from casestore.models import Case
from casestore.search.indexer import import_documents
from casestore.search.port import IndexedDoc, SearchIndex, SearchQuery, Viewer
from casestore.search.tantivy_index import TantivyIndex

VOCAB = 20_000
WORDS_PER_DOC = 100
N_CASES = 2_000
N_TEAMS = 10
CHANNELS = ("email", "scan", "sms", "fax", "webform", "file")
DOC_TYPES = ("letter", "invoice", "complaint", "statement", "claim", "notice")
BASE = datetime(2020, 1, 1, tzinfo=UTC)


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def vocabulary(seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "st", "tr", "pl"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
    words: set[str] = set()
    while len(words) < VOCAB:
        words.add("".join(rnd.choice(onsets) + rnd.choice(vowels) for _ in range(rnd.randint(2, 4))))
    return sorted(words, key=lambda w: (len(w), w))


class TextGen:
    def __init__(self, words: list[str], seed: int = 11) -> None:
        self.words = words
        self.rnd = random.Random(seed)
        weights = [1.0 / (rank + 1) for rank in range(len(words))]
        total = 0.0
        self.cum: list[float] = []
        for w in weights:
            total += w
            self.cum.append(total)

    def text(self) -> str:
        return " ".join(self.rnd.choices(self.words, cum_weights=self.cum, k=WORDS_PER_DOC))


def case_of(i: int) -> tuple[str, str, bool]:
    c = i % N_CASES
    return f"CM-2020-{c:06d}", f"t{c % N_TEAMS}", c % 50 == 49


def generated(n: int, gen: TextGen, start: int = 1) -> Iterator[IndexedDoc]:
    for i in range(start, start + n):
        ref, team, restricted = case_of(i)
        yield IndexedDoc(
            document_id=i, item_id=f"item-{i}", case_ref=ref, customer_id=f"C{i % 5000}", customer_name=None,
            title=f"document {i}", text=gen.text(), channel=CHANNELS[i % len(CHANNELS)],
            doc_type=DOC_TYPES[i % len(DOC_TYPES)], received_at=BASE + timedelta(minutes=i), case_status="open",
            teams=(team,), restricted=restricted,
        )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds of this process so far (all threads, user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> float:
    """The 1-minute load average: the machine is shared, so every figure says how busy it was."""
    return round(os.getloadavg()[0], 2)


def bench_index(index: SearchIndex, n: int, batch: int, gen: TextGen, label: str) -> None:
    it = generated(n, gen)
    gen_s = index_s = 0.0
    load_at_start, cpu0 = load(), cpu_s()
    started = time.perf_counter()
    with index.bulk():
        done = 0
        while done < n:
            t0 = time.perf_counter()
            docs = [next(it) for _ in range(min(batch, n - done))]
            t1 = time.perf_counter()
            index.index(docs)
            t2 = time.perf_counter()
            gen_s += t1 - t0
            index_s += t2 - t1
            done += len(docs)
    wall = time.perf_counter() - started
    emit(bench=f"{label}_index_only", docs=n, batch=batch, index_seconds=round(index_s, 1),
         docs_per_s=round(n / index_s), generate_seconds=round(gen_s, 1), wall_docs_per_s=round(n / wall),
         cpu_seconds=round(cpu_s() - cpu0, 1), max_rss_mb=round(rss_mb()), load_at_start=load_at_start,
         load_at_end=load())


def write_jsonl(path: Path, n: int, gen: TextGen) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for d in generated(n, gen):
            fh.write(json.dumps({"case_ref": d.case_ref, "title": d.title, "text": d.text, "channel": d.channel,
                                 "doc_type": d.doc_type, "received_at": d.received_at.isoformat()}) + "\n")


def make_cases(rt: Runtime) -> None:
    with rt.sessions() as session, session.begin():
        now = datetime.now(UTC)
        session.add_all(
            Case(ref=ref, case_type="general", status="open", subject="", team=team, restricted=restricted,
                 legacy=True, opened_at=now, updated_at=now)
            for ref, team, restricted in (case_of(c) for c in range(N_CASES))
        )


def bench_import(rt: Runtime, index: TantivyIndex, n: int, batch: int, gen: TextGen, work: Path,
                 jsonl: Path | None = None) -> None:
    path = jsonl or work / "legacy.jsonl"
    if jsonl is None or not jsonl.exists():  # --jsonl: generate once, reuse in later runs
        t0 = time.perf_counter()
        write_jsonl(path, n, gen)
        emit(bench="generate_jsonl", docs=n, seconds=round(time.perf_counter() - t0, 1),
             mb=round(path.stat().st_size / 1e6))
    make_cases(rt)
    load_at_start, cpu0 = load(), cpu_s()
    t0 = time.perf_counter()
    report = import_documents(rt.sessions, index, path, batch=batch, checkpoint_path=work / "import.checkpoint")
    seconds = time.perf_counter() - t0
    cpu = cpu_s() - cpu0
    emit(bench="tantivy_import_and_index", docs=report.lines, batch=batch, imported=report.imported,
         indexed=report.indexed, errors=report.error_count, seconds=round(seconds, 1),
         docs_per_s=round(report.lines / seconds), cpu_seconds=round(cpu, 1),
         cpu_us_per_doc=round(cpu / max(report.lines, 1) * 1e6), max_rss_mb=round(rss_mb()),
         load_at_start=load_at_start, load_at_end=load(), cpus=os.cpu_count())


def query_set(words: list[str], n: int, seed: int = 5) -> list[str]:
    rnd = random.Random(seed)
    mid = words[10:300]  # common enough to match: 1 word ~3-30% of documents, 3 words ~0.1%
    return [" ".join(rnd.sample(mid, rnd.randint(1, 3))) for _ in range(n)]


def serve(rt: Runtime) -> tuple[uvicorn.Server, str]:
    app = create_app(rt)
    app.include_router(search_router)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def percentiles(samples: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(samples, n=100)
    return {"p50_ms": round(qs[49] * 1000, 2), "p95_ms": round(qs[94] * 1000, 2), "p99_ms": round(qs[98] * 1000, 2)}


def bench_queries(rt: Runtime, index: SearchIndex, queries: list[str], label: str, docs: int) -> None:
    rt.search_index = index
    with rt.sessions() as session, session.begin():
        if session.query(users.User).filter_by(name="bench-agent").first() is None:
            users.add_user(session, name="bench-agent", role="agent", teams=["t3"])
        token = users.create_token(session, name="bench-agent")
    viewer = Viewer(role="agent", teams=("t3",))
    direct: list[float] = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(SearchQuery(text=q, limit=20), viewer)
        direct.append(time.perf_counter() - t0)
    server, base = serve(rt)
    http: list[float] = []
    totals: list[int] = []
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for q in queries[:20]:  # warm up
                client.get("/api/v1/search", params={"q": q, "limit": 20}).raise_for_status()
            for q in queries:
                t0 = time.perf_counter()
                resp = client.get("/api/v1/search", params={"q": q, "limit": 20})
                http.append(time.perf_counter() - t0)
                resp.raise_for_status()
                totals.append(int(resp.json()["total"]))
    finally:
        server.should_exit = True
    emit(bench=f"{label}_query_http", docs=docs, queries=len(queries), **percentiles(http),
         median_total_hits=int(statistics.median(totals)), viewer="agent of 1 of 10 teams")
    emit(bench=f"{label}_query_in_process", docs=docs, queries=len(queries), **percentiles(direct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--osmem-docs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--phases", default="index,import,query,osmem")
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a temp dir)")
    parser.add_argument("--jsonl", type=Path, default=None,
                        help="the import phase's JSON Lines file: written there if missing, reused if present")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    words = vocabulary()
    queries = query_set(words, args.queries)
    if "index" in phases:
        only = TantivyIndex(work / "index-only")
        bench_index(only, args.docs, args.batch, TextGen(words), "tantivy")
        only.close()
    rt = open_runtime(Settings(data_dir=work / "data"))
    index = TantivyIndex(work / "data" / "index")
    try:
        if "import" in phases:
            bench_import(rt, index, args.docs, args.batch, TextGen(words, seed=13), work, args.jsonl)
        if "query" in phases:
            bench_queries(rt, index, queries, "tantivy", index.count())
        if "osmem" in phases:
            from osmem_server import OsmemServer  # type: ignore[import-untyped]

            from casestore.search.opensearch_index import OpenSearchIndex

            with OsmemServer.start(japanese=False) as server:
                osx = OpenSearchIndex(server.url, index="bench")
                bench_index(osx, args.osmem_docs, 1000, TextGen(words, seed=17), "osmem")
                bench_queries(rt, osx, queries, "osmem", osx.count())
                osx.close()
    finally:
        index.close()
        rt.close()


if __name__ == "__main__":
    main()
