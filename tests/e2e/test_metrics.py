"""`/metrics` of a real `casework serve` (stages in child processes, as by default) after an
ingest, parsed with prometheus_client's own parser: per-stage items, failures and batch durations
from the children, consumer lag per stage from the bus, dead letters and the dead-letter and
triage backlogs from the store, and the same series on the token-less scrape listener."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.connectors.conftest import free_port

CASEWORK = [sys.executable, "-m", "api"]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition: (sample name, sorted labels) -> value. The parser raises on
    anything a Prometheus server would refuse to read."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"casework {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def wait_for(check: Callable[[], Any], what: str, log: Path, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; serve's log:\n{log.read_text(errors='replace')[-3000:]}")


def email(n: int) -> bytes:
    return (f"From: Person {n} <p{n}@example.net>\r\nTo: cases@casework.example\r\nSubject: Question {n}\r\n"
            f"Message-ID: <metrics-{n}@example.net>\r\n\r\nWhen will my parcel {n} arrive?\r\n").encode()


def test_metrics_show_stages_lag_and_backlog_after_an_ingest(tmp_path: Path, user_env: dict[str, str]) -> None:
    port, scrape_port = free_port(), free_port()
    env = {**user_env, "CASEWORK_WORKER__STAGE_PROCESSES": "processes",
           "CASEWORK_METRICS__PORT": str(scrape_port), "CASEWORK_METRICS__HOST": "127.0.0.1"}
    log_path = tmp_path / "serve.log"
    cli(env, "user", "add", "ops", "--role", "admin")  # migrates the store before serve starts
    token = cli(env, "token", "create", "ops").strip()
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([*CASEWORK, "serve", "--port", str(port)], env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        def up() -> bool:
            assert server.poll() is None, f"serve exited: {log_path.read_text(errors='replace')[-3000:]}"
            try:
                return httpx.get(f"{base}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "/health", log_path)
        uploads = [(f"q{n}.eml", email(n)) for n in range(3)] + [("broken.pdf", b"%PDF-1.7\nnot really a pdf")]
        for name, data in uploads:
            r = httpx.post(f"{base}/api/v1/items", headers=auth, files={"file": (name, data)},
                           data={"channel": "email" if name.endswith(".eml") else "file"}, timeout=30)
            assert r.status_code == 202, r.text

        def settled() -> Samples | None:
            r = httpx.get(f"{base}/metrics", headers=auth, timeout=30)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            samples = parse(r.text)
            lags = [value(samples, "casework_consumer_lag", stage=s, group=f"casework.{s}", topic=t)
                    for s, t in (("extract", "intake.raw"), ("classify", "intake.extracted"),
                                 ("file", "intake.classified"))]
            filed = value(samples, "casework_stage_items_total", stage="file") or 0
            return samples if lags == [0, 0, 0] and filed >= 3 else None

        samples = wait_for(settled, "every stage caught up in /metrics", log_path)

        # per stage, from the stage processes: items, failures, batch durations
        assert value(samples, "casework_stage_items_total", stage="extract") == 4
        assert value(samples, "casework_stage_items_total", stage="classify") == 3
        assert value(samples, "casework_stage_items_total", stage="file") == 3
        assert value(samples, "casework_stage_failed_total", stage="extract") == 1
        for stage in ("extract", "classify", "file"):
            count = value(samples, "casework_stage_batch_duration_seconds_count", stage=stage)
            assert count and count >= 1
            assert value(samples, "casework_stage_batch_duration_seconds_bucket", stage=stage, le="+Inf") == count
            assert (value(samples, "casework_stage_batch_duration_seconds_sum", stage=stage) or 0) > 0
        # backlog and throughput from the bus, for all workers wherever they run
        assert value(samples, "casework_consumer_committed_records_total", stage="extract", group="casework.extract",
                     topic="intake.raw") == 4
        assert value(samples, "casework_dead_letters_total") == 1
        # backlogs from the store
        assert value(samples, "casework_dead_letter_items") == 1
        assert value(samples, "casework_triage_backlog") is not None
        assert value(samples, "casework_metrics_source_up", source="bus") == 1
        assert value(samples, "casework_metrics_source_up", source="store") == 1
        assert value(samples, "process_cpu_seconds_total") is not None
        assert any(name == "casework_connector_up" for name, _ in samples), "the connectors' series are kept"

        assert httpx.get(f"{base}/metrics", timeout=30).status_code == 401, "/metrics on the API port needs a token"
        listener = parse(httpx.get(f"http://127.0.0.1:{scrape_port}/metrics", timeout=30).text)
        assert value(listener, "casework_stage_items_total", stage="extract") == 4
        assert value(listener, "casework_consumer_lag", stage="file", group="casework.file",
                     topic="intake.classified") == 0

        cli(env, "dlq", "discard", "--all", "--reason", "a test document, not a real one")
        after = parse(httpx.get(f"{base}/metrics", headers=auth, timeout=30).text)
        assert value(after, "casework_dead_letter_items") == 0, "a discarded entry leaves the backlog"
        assert value(after, "casework_dead_letters_total") == 1, "the topic keeps the letter"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
