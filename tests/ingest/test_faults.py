"""The crash suite's fault hook (``ingest.faults``): off by default, exact when armed, and a value
that does not parse is ignored rather than crashing the product."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

SCRIPT = ("from ingest.faults import fault_point\n"
          "for i in range(3):\n    fault_point('mid_file'); print(i, flush=True)\n")


def run(fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CASEWORK_FAULT"}
    if fault is not None:
        env["CASEWORK_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_armed_it_kills_the_process_the_nth_time_at_that_point_only() -> None:
    done = run("mid_file:2")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0"]
    assert run("after_publish:1").stdout.split() == ["0", "1", "2"]  # another point: untouched


def test_off_by_default_and_a_bad_value_is_ignored_with_a_warning() -> None:
    assert run(None).stdout.split() == ["0", "1", "2"]
    bad = run("mid_file:zero")
    assert bad.returncode == 0 and bad.stdout.split() == ["0", "1", "2"]
    assert "CASEWORK_FAULT" in bad.stderr
