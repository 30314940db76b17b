"""Per-connector counters (received, duplicates, failed, lag) and state, for /health and /metrics.

Every connector owns one ``ConnectorStats`` from a ``Registry`` (the process-wide ``REGISTRY``
unless a test passes its own). ``Registry.health()`` is a plain dict for ``/health``;
``Registry`` is also a prometheus_client collector (``collect``), registered with the other
series ``/metrics`` shows (api/metrics.py); ``Registry.prometheus()`` renders it alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

State = str  # "starting", "running", "reconnecting", "stopped", "error"


@dataclass
class ConnectorStats:
    name: str
    kind: str = ""
    received: int = 0
    duplicates: int = 0
    failed: int = 0
    last_lag_s: float = 0.0
    max_lag_s: float = 0.0
    lag_sum_s: float = 0.0
    last_item_at: float | None = None
    last_error: str | None = None
    state: State = "starting"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_received(self, lag_s: float = 0.0) -> None:
        lag_s = max(0.0, lag_s)
        with self._lock:
            self.received += 1
            self.last_lag_s = lag_s
            self.max_lag_s = max(self.max_lag_s, lag_s)
            self.lag_sum_s += lag_s
            self.last_item_at = time.time()

    def record_duplicate(self) -> None:
        with self._lock:
            self.duplicates += 1

    def record_failed(self, error: str) -> None:
        with self._lock:
            self.failed += 1
            self.last_error = error[:500]

    def set_state(self, state: State, error: str | None = None) -> None:
        with self._lock:
            self.state = state
            if error is not None:
                self.last_error = error[:500]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"kind": self.kind, "state": self.state, "received": self.received,
                    "duplicates": self.duplicates, "failed": self.failed,
                    "last_lag_s": round(self.last_lag_s, 3), "max_lag_s": round(self.max_lag_s, 3),
                    "last_item_at": self.last_item_at, "last_error": self.last_error}


class Registry:
    def __init__(self) -> None:
        self._stats: dict[str, ConnectorStats] = {}
        self._lock = threading.Lock()

    def get(self, name: str, kind: str = "") -> ConnectorStats:
        """The stats called ``name``, created on first use."""
        with self._lock:
            stats = self._stats.get(name)
            if stats is None:
                stats = self._stats[name] = ConnectorStats(name=name, kind=kind or name.split(":")[0])
            return stats

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._stats)

    def health(self) -> dict[str, dict[str, Any]]:
        """``{name: {kind, state, received, duplicates, failed, last_lag_s, ...}}`` for /health."""
        return {name: self.get(name).snapshot() for name in self.names()}

    def degraded(self) -> bool:
        return any(s["state"] in ("error", "stopped") for s in self.health().values())

    def collect(self) -> Iterator[Metric]:
        """The connectors' series for prometheus_client (this registry is a custom collector: register
        it in a ``CollectorRegistry``), one sample per connector."""
        health = self.health()
        series: list[tuple[str, str, str]] = [
            ("casework_connector_received", "items published to intake.raw", "received"),
            ("casework_connector_duplicates", "inputs recognised as already published", "duplicates"),
            ("casework_connector_failed", "inputs refused or failed", "failed"),
        ]
        for metric, help_text, key in series:
            counter = CounterMetricFamily(metric, help_text, labels=["connector"])
            for name, snap in health.items():
                counter.add_metric([name], snap[key])
            yield counter
        for metric, help_text, key in [
            ("casework_connector_lag_seconds", "source time to publish, last item", "last_lag_s"),
            ("casework_connector_max_lag_seconds", "source time to publish, worst item", "max_lag_s"),
        ]:
            gauge = GaugeMetricFamily(metric, help_text, labels=["connector"])
            for name, snap in health.items():
                gauge.add_metric([name], snap[key])
            yield gauge
        up = GaugeMetricFamily("casework_connector_up", "1 if the connector is running", labels=["connector"])
        for name, snap in health.items():
            up.add_metric([name], 1 if snap["state"] in ("running", "starting") else 0)
        yield up

    def prometheus(self) -> str:
        """These series alone in the Prometheus text format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry).decode("utf-8")


REGISTRY = Registry()
