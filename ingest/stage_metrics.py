"""What every pipeline stage counts, with prometheus_client: items handled, dead-lettered and
retried, restarts, and how long a batch takes from poll to commit.

The series live in ``STAGE_REGISTRY`` (not the library's global registry), labelled by stage,
and are recorded by ``ingest.worker.Worker`` in whatever process runs the stage:

* the API process itself (stages as threads): ``/metrics`` reads ``STAGE_REGISTRY``;
* a stage child process of ``casework serve``: the child records in prometheus_client's
  multiprocess mode (``record_in_directory``) and the API process merges the children's files;
* ``casework worker STAGE``: its own scrape listener (``CASEWORK_METRICS__PORT``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values

STAGE_REGISTRY = CollectorRegistry(auto_describe=True)

#: Seconds from a batch's poll to its commit: milliseconds for classify and file, up to minutes
#: for an extract batch of scans (OCR takes ~2 s a page).
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

ITEMS = Counter("casework_stage_items", "records a stage handled and committed (dead-lettered ones included)",
                ["stage"], registry=STAGE_REGISTRY)
FAILED = Counter("casework_stage_failed", "records a stage dead-lettered to intake.dead", ["stage"],
                 registry=STAGE_REGISTRY)
RETRIED = Counter("casework_stage_retries", "retries of a record after a retryable error", ["stage"],
                  registry=STAGE_REGISTRY)
RESTARTS = Counter("casework_stage_restarts", "times a stage left a batch uncommitted, backed off and rejoined "
                   "(an outage of the store, the bus or the blob store; or a bug)", ["stage"], registry=STAGE_REGISTRY)
BATCH_SECONDS = Histogram("casework_stage_batch_duration_seconds", "time from a batch's poll to its commit",
                          ["stage"], buckets=BATCH_BUCKETS, registry=STAGE_REGISTRY)


@dataclass(frozen=True)
class StageSeries:
    """One stage's children of the series above (looked up once, not per batch)."""

    items: Counter
    failed: Counter
    retried: Counter
    restarts: Counter
    batch_seconds: Histogram


def series_for(stage: str) -> StageSeries:
    return StageSeries(items=ITEMS.labels(stage=stage), failed=FAILED.labels(stage=stage),
                       retried=RETRIED.labels(stage=stage), restarts=RESTARTS.labels(stage=stage),
                       batch_seconds=BATCH_SECONDS.labels(stage=stage))


def record_in_directory(directory: Path) -> None:
    """Make this process record its series in ``directory`` (prometheus_client's multiprocess
    mode), for a parent process to merge with ``MultiProcessCollector``.  Call it in a fresh child
    before any stage's series are looked up: the library picks where a series' value lives when the
    series is created, from ``PROMETHEUS_MULTIPROC_DIR`` (``values.get_value_class``), and this
    process's series created before the call stay in its memory."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.get_value_class()
