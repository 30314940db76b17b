"""Triage: the queue of items the matcher would not decide, and their resolution by a person.

Each resolution is recorded as a label (``match_labels``) that retraining reads.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import Principal, get_runtime, require_roles
from casestore import triage
from casestore.search import outbox as search_outbox

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/triage", tags=["triage"])
Agent = Annotated[Principal, require_roles("agent", "supervisor", "admin")]
MAX_OFFSET = 2**31 - 1  # past any real queue; the databases' OFFSET overflows at 2**63


class Resolve(BaseModel):
    action: Literal["attach", "new_case", "noise"]
    case_ref: str | None = Field(default=None, description="the case to attach to (action attach)")
    customer_id: str | None = Field(default=None, description="CRM id for a new case; empty: unknown person")
    doc_type: str | None = Field(default=None, description="the correct document type, if the matcher was wrong")
    case_type: str | None = None
    reason: str = Field(default="", description="why: kept in the audit trail")


@router.get("")
def queue(request: Request, user: Agent, limit: Annotated[int, Query(ge=1, le=500)] = 100,
          offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[dict[str, Any]]:
    """Triage items the caller may see: none that names another team's case or customer."""
    with get_runtime(request).read_sessions() as session:
        return triage.triage_queue(session, viewer=user, limit=limit, offset=offset)


@router.post("/{item_id}/resolve")
def resolve(request: Request, item_id: str, body: Resolve, user: Agent) -> dict[str, Any]:
    """404 alike for an item, case or customer that does not exist and one the caller may not see."""
    rt = get_runtime(request)
    with rt.sessions() as session, session.begin():
        res = triage.resolve_triage(session, item_id=item_id, action=body.action, case_ref=body.case_ref,
                                    viewer=user, actor=user.name, reason=body.reason, customer_id=body.customer_id,
                                    doc_type=body.doc_type, case_type=body.case_type)
        outbox_ids = search_outbox.enqueue(session, item_ids=[res.item_id])  # search must follow: with the change
    search = "updated"
    try:  # search must now show it only to its case's teams
        done = rt.search_drainer.drain(ids=outbox_ids)
        if done.rows < len(outbox_ids):
            search = "waiting: the index is not taking updates now; it is updated when it is back"
    except Exception as exc:  # the resolution and its outbox row are committed: a later drain indexes it
        log.warning("triage %s resolved; its search update waits in the outbox (%s)", res.item_id, exc)
        search = f"waiting ({type(exc).__name__}): updated when the index is back"
    return {"item_id": res.item_id, "outcome": res.outcome, "case_ref": res.case_ref, "doc_type": res.doc_type,
            "label_id": res.label_id, "search_index": search}
