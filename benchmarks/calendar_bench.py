"""Microseconds per ``due()`` call: what a calendar change costs when every open SLA clock is re-computed.

    python -m benchmarks.calendar_bench [--calls 100000] [--max-days 15] [--seed 0]

Random (start, duration) pairs: starts uniform over 2025-2028 (any microsecond), durations uniform up to
``--max-days`` working days (8 h each).  Each shipped calendar is timed twice: "cold" on a fresh
calendar (its per-date cache filling as it goes, as after a reload) and "warm" on the same pairs
again; then ``working_time_between`` over the same spans.  One JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta

from casestore.work.calendar import due, working_time_between
from casestore.work.calendar_config import SHIPPED_CALENDARS, load_calendars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--max-days", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    origin, span = datetime(2025, 1, 1, tzinfo=UTC), 4 * 365 * 86_400_000_000
    pairs = [(origin + timedelta(microseconds=rng.randrange(span)),
              timedelta(microseconds=rng.randrange(args.max_days * 8 * 3_600_000_000)))
             for _ in range(args.calls)]
    for name, calendar in sorted(load_calendars(SHIPPED_CALENDARS).items()):  # fresh: empty per-date caches
        for run in ("cold", "warm"):
            began, cpu = time.perf_counter(), time.process_time()
            ends = [due(start, duration, calendar) for start, duration in pairs]
            _report(name, "due", run, len(pairs), began, cpu)
        began, cpu = time.perf_counter(), time.process_time()
        for (start, _), end in zip(pairs, ends, strict=True):
            working_time_between(start, end, calendar)
        _report(name, "working_time_between", "warm", len(pairs), began, cpu)


def _report(calendar: str, call: str, run: str, calls: int, began: float, cpu: float) -> None:
    wall_us, cpu_us = (time.perf_counter() - began) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6
    print(json.dumps({"calendar": calendar, "call": call, "run": run, "calls": calls,
                      "us_per_call": round(wall_us, 2), "cpu_us_per_call": round(cpu_us, 2)}))


if __name__ == "__main__":
    main()
