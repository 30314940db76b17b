"""Fault injection for the crash tests (issue 15): off unless ``CASEWORK_FAULT`` is set.

``CASEWORK_FAULT=POINT:N`` makes the process ``SIGKILL`` itself the Nth time it reaches POINT
(counted per process), exactly as ``kill -9`` at that moment would.  The points are the
pipeline's stage boundaries:

* ``after_blob_write``  a blob is durable in the file store; nothing about it is published yet
* ``after_publish``     a stage's outputs are durable on the bus; its input offsets are not committed
* ``mid_extract``       the extract stage has read an item; its batch is neither published nor committed
* ``mid_file``          the file stage has written a batch inside its transaction; not committed
* ``after_file_commit`` the file stage's transaction is committed; the offsets are not

Unset (the default) a fault point costs one attribute read.  A value that does not parse is
ignored with a warning, never a crash of the product.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Literal, get_args

log = logging.getLogger(__name__)

FaultPoint = Literal["after_blob_write", "after_publish", "mid_extract", "mid_file", "after_file_commit"]
POINTS: frozenset[str] = frozenset(get_args(FaultPoint))
ENV = "CASEWORK_FAULT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, nth = value.partition(":")
    if point not in POINTS or not nth.isdigit() or int(nth) < 1:
        log.warning("%s=%r ignored: use POINT:N with POINT one of %s", ENV, value, ", ".join(sorted(POINTS)))
        return None
    return point, int(nth)


_armed = _parse(os.environ.get(ENV))
_count = 0
_lock = threading.Lock()


def fault_point(point: FaultPoint) -> None:
    """Kill this process with SIGKILL if ``CASEWORK_FAULT`` names ``point`` and this is its Nth time."""
    global _count
    if _armed is None or _armed[0] != point:
        return
    with _lock:
        _count += 1
        if _count != _armed[1]:
            return
    os.kill(os.getpid(), signal.SIGKILL)
