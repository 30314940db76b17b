"""The shape shared by the store's background loops (the SLA clock loop, the search outbox loop):
a round every ``interval_s`` until told to stop, where a failed round is counted, logged and
tried again next time (never the end of the loop), and the exponential backoff of retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from casestore.errors import CaseStoreError

log = logging.getLogger(__name__)


def exponential_backoff(attempts: int, initial_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: ``initial_s``, doubling, at most ``max_s``."""
    return float(min(initial_s * 2 ** max(attempts - 1, 0), max_s))


def repeat_rounds(round_: Callable[[], object], *, stop: threading.Event, interval_s: float, name: str,
                  on_error: Callable[[BaseException], None] | None = None) -> None:
    """Run ``round_`` now and then every ``interval_s`` until ``stop`` is set.  A store error (down,
    busy: ``CaseStoreError``) is logged as a warning, anything else with its traceback; either is
    passed to ``on_error`` (a counter for /health) and the next round comes as usual."""
    while not stop.is_set():
        try:
            round_()
        except CaseStoreError as exc:
            if on_error is not None:
                on_error(exc)
            log.warning("%s: %s; trying again in %.1fs", name, exc, interval_s)
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            log.exception("%s: a round failed; trying again in %.1fs", name, interval_s)
        stop.wait(interval_s)
