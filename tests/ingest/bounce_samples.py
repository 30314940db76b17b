"""Real bounces from other projects' test sets, fetched as dependencies (never copied in).

flufl.bounce (GNU Mailman's bounce detector, Apache-2.0) ships 117 real bounce and look-alike
messages from about 40 mail systems in its source distribution (``tests/data``); the wheel
does not carry them, so the sdist is fetched with pip into a cache once.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FLUFL = "flufl.bounce==6.0.0"
# In flufl's set but not bounces: a person's reply (groupwise_03) and an auto-reply (qmail_08).
NOT_BOUNCES = {"groupwise_03.txt", "qmail_08.txt"}


def flufl_samples() -> Path | None:
    """The folder of flufl.bounce's sample messages, or None if it cannot be fetched here.  The cache
    is shared by every test run on the machine (xdist workers, other worktrees): one fetches at a
    time, under a lock, and the folder appears whole (unpacked aside, then renamed into place)."""
    cache = Path(os.environ.get("CASEWORK_TEST_CACHE", Path.home() / ".cache" / "casework-tests"))
    data = cache / "flufl_bounce-6.0.0" / "tests" / "data"
    if data.is_dir():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".flufl.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if data.is_dir():  # another run fetched it while this one waited
            return data
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", FLUFL, "--no-binary", ":all:", "--no-deps", "-d",
                 str(cache)],
                capture_output=True, timeout=120, check=False)
        except (subprocess.TimeoutExpired, OSError):
            return None  # no registry here: the test says it skipped
        archives = sorted(cache.glob("flufl_bounce-6.0.0.tar.gz"))
        if done.returncode != 0 or not archives:
            return None
        with tempfile.TemporaryDirectory(dir=cache) as aside, tarfile.open(archives[0]) as tar:
            tar.extractall(aside, members=[m for m in tar.getmembers() if "/tests/data/" in m.name], filter="data")
            os.replace(Path(aside) / "flufl_bounce-6.0.0", cache / "flufl_bounce-6.0.0")
    return data if data.is_dir() else None
