"""What ``/metrics`` shows (prometheus_client): the connectors' counters, the pipeline stages'
counters and batch-duration histograms, and the backlog, read at scrape time.

Where each part comes from:

* connectors: ``connectors.metrics.REGISTRY`` (a custom collector over their stats);
* stages: ``ingest.stage_metrics.STAGE_REGISTRY`` of this process (stages run as threads here),
  merged with the files of the stage child processes ``casework serve`` starts (they record in
  prometheus_client's multiprocess mode, in a directory per ``StageProcesses``: see
  ``child_metrics_dir``).  A ``casework worker STAGE`` elsewhere shows its own on its scrape
  listener (``CASEWORK_METRICS__PORT``);
* backlog (``BacklogCollector``), computed by this process when scraped, from the bus and the
  store, so it covers every worker of every machine and holds when a stage is down: consumer lag
  per stage (end offsets against the group's committed offsets), records committed per stage
  (its ``rate()`` is the stage's throughput over all its workers), dead letters written, the
  dead-letter backlog (items waiting for ``casework dlq``), the triage backlog and the search
  outbox (index updates not written yet).

The scrape listener (``serve_metrics``) serves the same registry without a token, for a
Prometheus on a private network; ``/metrics`` on the API port needs a token.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from api.wiring import Runtime
from casestore import intake_stats
from casestore.errors import CaseStoreError
from casestore.models import utcnow
from casestore.search import outbox as search_outbox
from casestore.work import queue_reads
from casestore.work.actor import Actor
from casestore.work.queue_views import QueueSummary
from connectors.metrics import REGISTRY as CONNECTORS
from ingest.bus.lag import Inspectable, group_lag
from ingest.errors import IngestError
from ingest.messages import TOPIC_CLASSIFIED, TOPIC_DEAD, TOPIC_EXTRACTED, TOPIC_RAW
from ingest.stage_metrics import STAGE_REGISTRY

log = logging.getLogger(__name__)

#: The pipeline's consumer groups: stage -> (group, the topic it reads).
STAGE_GROUPS = {"extract": ("casework.extract", TOPIC_RAW), "classify": ("casework.classify", TOPIC_EXTRACTED),
                "file": ("casework.file", TOPIC_CLASSIFIED)}

_child_dirs: list[Path] = []
_child_dirs_lock = threading.Lock()


def child_metrics_dir() -> Path:
    """A new, empty directory for stage child processes to record their series in (see
    ``ingest.stage_metrics.record_in_directory``); this process's ``/metrics`` merges it in."""
    path = Path(tempfile.mkdtemp(prefix="casework-metrics-"))
    with _child_dirs_lock:
        _child_dirs.append(path)
    return path


def forget_child_metrics_dir(path: Path) -> None:
    """The children are gone: stop merging their series and remove their files."""
    with _child_dirs_lock:
        if path in _child_dirs:
            _child_dirs.remove(path)
    shutil.rmtree(path, ignore_errors=True)


class StageCollector(Collector):
    """The stage series of this process and of its stage children, one family per name, samples with
    the same labels added up (a stage may have run here and in a child)."""

    def collect(self) -> Iterator[Metric]:
        sources: list[Iterable[Metric]] = [STAGE_REGISTRY.collect()]
        with _child_dirs_lock:
            dirs = [d for d in _child_dirs if d.is_dir()]
        sources += [MultiProcessCollector(None, path=str(d)).collect() for d in dirs]
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for source in sources:
            for family in source:
                if family.name not in merged:
                    merged[family.name] = Metric(family.name, family.documentation, family.type)
                    values[family.name] = {}
                sums = values[family.name]
                for sample in family.samples:
                    if sample.name.endswith("_created"):  # per process; meaningless once added up
                        continue
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    sums[key] = sums.get(key, 0.0) + sample.value
        for name, family in merged.items():
            for (sample_name, labels), value in values[name].items():
                family.add_sample(sample_name, dict(labels), value)
            yield family


class BacklogCollector(Collector):
    """Backlog and dead letters, read from the bus and the store at each scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        from_bus, from_store = self._bus_families(), self._store_families()
        yield from from_bus or []
        yield from from_store or []
        up = GaugeMetricFamily("casework_metrics_source_up", "1 if the bus or the store answered this scrape",
                               labels=["source"])
        up.add_metric(["bus"], 0 if from_bus is None else 1)
        up.add_metric(["store"], 0 if from_store is None else 1)
        yield up

    def _bus_families(self) -> list[Metric] | None:
        bus: Any = self.rt.bus
        if not (hasattr(bus, "end_offsets") and hasattr(bus, "committed")):
            return None
        inspectable: Inspectable = bus
        lag = GaugeMetricFamily("casework_consumer_lag", "records on the stage's input topic its consumer group has "
                                "not committed yet (the stage's backlog, all its workers together)",
                                labels=["stage", "group", "topic"])
        committed = CounterMetricFamily("casework_consumer_committed_records", "records the stage's consumer group "
                                        "has committed; rate() is the stage's throughput over all its workers",
                                        labels=["stage", "group", "topic"])
        dead = CounterMetricFamily("casework_dead_letters", f"letters written to {TOPIC_DEAD} (every failed attempt "
                                   "of every stage; the topic keeps them)")
        try:
            for stage, (group, topic) in STAGE_GROUPS.items():
                found = group_lag(inspectable, group=group, topic=topic)
                lag.add_metric([stage, group, topic], found.lag)
                committed.add_metric([stage, group, topic], found.committed)
            dead.add_metric([], sum(inspectable.end_offsets(TOPIC_DEAD).values()))
        except IngestError as exc:
            log.warning("metrics: the bus did not answer (%s: %s); backlog series left out of this scrape",
                        type(exc).__name__, exc)
            return None
        return [lag, committed, dead]

    def _store_families(self) -> list[Metric] | None:
        try:
            with self.rt.read_sessions() as session:
                dead_items = intake_stats.dead_letter_backlog(session)
                triage = intake_stats.triage_backlog(session)
                index_waiting = search_outbox.depth(session)
                now = utcnow()
                queues = queue_reads.queue_summaries(session, actor=METRICS_ACTOR, now=now)
        except CaseStoreError as exc:
            log.warning("metrics: the store did not answer (%s: %s); store series left out of this scrape",
                        type(exc).__name__, exc)
            return None
        waiting = GaugeMetricFamily("casework_dead_letter_items", "items that failed in a stage, are not filed and "
                                    "were not replayed or discarded since (what `casework dlq list` shows)")
        waiting.add_metric([], dead_items)
        backlog = GaugeMetricFamily("casework_triage_backlog", "items waiting in triage for a person")
        backlog.add_metric([], triage.waiting)
        oldest = GaugeMetricFamily("casework_triage_oldest_age_seconds", "age of the oldest item waiting in triage "
                                   "(0 when none waits)")
        age = (utcnow() - triage.oldest_received_at).total_seconds() if triage.oldest_received_at else 0.0
        oldest.add_metric([], max(0.0, age))
        outbox = GaugeMetricFamily("casework_search_outbox_pending", "index updates waiting in the search outbox "
                                   "(written with the filing or change; the index has not taken them in yet)")
        outbox.add_metric([], index_waiting.pending)
        failing = GaugeMetricFamily("casework_search_outbox_failing", "of those, updates whose index write failed "
                                    "at least once (the index is down or refuses them)")
        failing.add_metric([], index_waiting.failing)
        outbox_age = GaugeMetricFamily("casework_search_outbox_oldest_age_seconds", "age of the oldest update "
                                       "waiting in the search outbox (0 when none waits)")
        outbox_age.add_metric([], index_waiting.oldest_age_s)
        return [waiting, backlog, oldest, outbox, failing, outbox_age, *_queue_families(queues, now)]


METRICS_ACTOR = Actor(name="metrics", role="admin")  # counts every queue over every case


def _queue_families(queues: list[QueueSummary], now: datetime) -> list[Metric]:
    """Work queues (issue 10): depth by state, SLA at risk and breached, age of the oldest waiting
    task.  Read from the trigger-kept counts and the clocks' indexes, so a scrape stays cheap at a
    million open tasks."""
    tasks = GaugeMetricFamily("casework_queue_tasks", "open tasks of a work queue: waiting (nobody holds it) or "
                              "active (claimed)", labels=["queue", "state"])
    at_risk = GaugeMetricFamily("casework_queue_sla_at_risk", "open tasks of a queue whose case has an SLA clock "
                                "past its warning but not yet due", labels=["queue"])
    breached = GaugeMetricFamily("casework_queue_sla_breached", "open tasks of a queue whose case has a breached "
                                 "SLA clock", labels=["queue"])
    oldest = GaugeMetricFamily("casework_queue_oldest_waiting_age_seconds", "age of the queue's oldest waiting "
                               "task (0 when none waits)", labels=["queue"])
    for q in queues:
        tasks.add_metric([q.queue, "waiting"], q.waiting)
        tasks.add_metric([q.queue, "active"], q.active)
        at_risk.add_metric([q.queue], q.at_risk)
        breached.add_metric([q.queue], q.breached)
        oldest.add_metric([q.queue], max(0.0, (now - q.oldest_waiting).total_seconds()) if q.oldest_waiting else 0.0)
    return [tasks, at_risk, breached, oldest]


def metrics_registry(rt: Runtime | None, *, connectors: bool = True) -> CollectorRegistry:
    """The registry ``/metrics`` (and the scrape listener) renders: connectors, stages, this process's
    CPU and memory, and, given a runtime, the backlog."""
    registry = CollectorRegistry(auto_describe=False)
    if connectors:
        registry.register(CONNECTORS)
    registry.register(StageCollector())
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
    if rt is not None:
        registry.register(BacklogCollector(rt))
    return registry


def serve_metrics(registry: CollectorRegistry, *, host: str, port: int) -> None:
    """The scrape listener: ``registry`` at http://HOST:PORT/metrics, without a token (a thread of
    prometheus_client's own HTTP server, a daemon that ends with the process)."""
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics for scrapers at http://%s:%d/metrics (no token: keep the port on a private network)",
             host, port)
