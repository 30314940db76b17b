"""Search follows a change at once, or as soon as the index is back.

A service that changes what search should show writes search outbox rows in its transaction
(``casestore.search.outbox``).  After the commit, the route or command that owns the transaction
calls ``index_now`` with those rows: they are written to the index right away (search shows the
change in the response's next query), or, when the index is down or paused after a failure,
they stay in the outbox and ``casework serve``'s outbox loop writes them when it is back.  The
change is committed either way; nothing here fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from api.wiring import Runtime

log = logging.getLogger(__name__)

UPDATED = "updated"


def index_now(rt: Runtime, outbox_ids: Sequence[int], *, what: str) -> str:
    """Drain ``outbox_ids`` now; ``"updated"``, or why search does not show the change yet."""
    if not outbox_ids:
        return UPDATED
    try:
        done = rt.search_drainer.drain(ids=outbox_ids)
    except Exception as exc:  # the store is unreachable now: the rows are committed, a later drain takes them
        log.warning("%s: its search update waits in the outbox (%s: %s)", what, type(exc).__name__, exc)
        return f"waiting ({type(exc).__name__}): search is updated when the index is back"
    if done.rows < len(outbox_ids):
        log.info("%s: its search update waits in the outbox (%s)", what, done.error or "the index is paused")
        return "waiting: the index is not taking updates now; search is updated when it is back"
    return UPDATED
