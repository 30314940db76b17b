"""The audit log: append-only events about cases and items (the database refuses edits)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from casestore.models import AuditEvent, Case, utcnow

log = logging.getLogger(__name__)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    reason: str = "",
    case: Case | None = None,
    item_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
    flush: bool = True,
) -> AuditEvent:
    """Append one audit event (flushed, so it has its id, unless ``flush`` is False: then it is
    written with the session's next flush, together with the other rows pending).  ``at`` is
    when it happened (now by default)."""
    if case is not None and case.id is None:
        session.flush()  # a case opened in this transaction gets its id
    event = AuditEvent(
        at=at or utcnow(),
        actor=actor,
        action=action,
        reason=reason,
        case_id=case.id if case is not None else None,
        item_id=item_id,
        details=dict(details or {}),
    )
    session.add(event)
    if flush:
        session.flush()
    log.debug("audit %s by %s case=%s item=%s", action, actor, case.ref if case else None, item_id)
    return event

