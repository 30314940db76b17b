"""Is a process still the one we knew?  Used to fence dead group members and by stage
processes to notice that the process that started them is gone."""

from __future__ import annotations

import os
from pathlib import Path


def process_start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) or None if it is gone or a zombie.

    Comparing it with a value read earlier tells a live process from a reused pid.  Without
    /proc (not Linux) a live pid gives "?", which only says "alive".
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields[19]
