"""Triage: the queue of items the matcher would not decide, and their resolution by a person.

Each resolution is recorded as a label (``match_labels``) that retraining reads.  Triage is a work
queue too: ``POST /triage/next`` hands the oldest free item to a person of the triage team with a
lease (``casestore.triage_leases``); resolving an item another person holds is a 409.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import Principal, get_runtime, require_roles
from api.search_follow import index_now
from casestore import triage, triage_leases
from casestore.db import translate_errors
from casestore.models import utcnow
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


class TriageItemView(BaseModel):
    item_id: str
    received_at: datetime
    channel: str
    sender: str | None
    subject: str | None
    doc_type: str | None
    reason: str = Field(description="why the matcher left it for a person")
    candidates: list[Any] = Field(description="the matcher's ranked candidate cases")


class TriageNext(BaseModel):
    """The triage item get-next claimed for you (``item`` null: nothing waiting), and until when."""

    item: TriageItemView | None
    lease_expires_at: datetime | None = None
    lease_version: int | None = None


class TriageRelease(BaseModel):
    reason: str = Field(default="", max_length=2000, description="why: kept in the audit trail")


@router.post("/next", response_model=TriageNext)
def next_item(request: Request, user: Agent) -> TriageNext:
    """Claim the oldest waiting triage item you may see, with a lease (the triage team, supervisors
    and admins; 403 for others)."""
    rt = get_runtime(request)
    work = rt.settings.work
    with translate_errors(), rt.sessions() as session, session.begin():
        claimed = triage_leases.next_item(session, viewer=user, team=work.triage_team,
                                         lease=timedelta(minutes=work.triage_lease_minutes), now=utcnow())
        if claimed is None:
            return TriageNext(item=None)
        i = claimed.item
        decision = i.decision or {}
        view = TriageItemView(item_id=i.item_id, received_at=i.received_at, channel=i.channel, sender=i.sender,
                              subject=i.subject, doc_type=i.doc_type, reason=str(decision.get("reason", "")),
                              candidates=list(decision.get("candidates", [])))
        return TriageNext(item=view, lease_expires_at=claimed.lease_expires_at, lease_version=claimed.lease_version)


@router.post("/{item_id}/release", status_code=204)
def release(request: Request, item_id: str, user: Agent, body: TriageRelease | None = None) -> None:
    """Give back a triage item you hold."""
    with translate_errors(), get_runtime(request).sessions() as session, session.begin():
        triage_leases.release(session, item_id=item_id, viewer=user, now=utcnow(), reason=body.reason if body else "")


@router.get("")
def queue(request: Request, user: Agent, limit: Annotated[int, Query(ge=1, le=500)] = 100,
          offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[dict[str, Any]]:
    """Triage items the caller may see: none that names another team's case or customer."""
    with get_runtime(request).read_sessions() as session:
        return triage.triage_queue(session, viewer=user, limit=limit, offset=offset)


@router.post("/{item_id}/resolve")
def resolve(request: Request, item_id: str, body: Resolve, user: Agent) -> dict[str, Any]:
    """404 alike for an item, case or customer that does not exist and one the caller may not see.
    The case's work follows, as when the pipeline files an item: a new case starts its type's
    work; an item attached to a case is the customer's reply (a closed case reopens within its
    type's reopen window, or a new linked case opens: the outcome is then ``new_case``)."""
    from casestore.work.inbound import InboundWork

    rt = get_runtime(request)
    work = InboundWork(rt.work)  # as filing: a new case starts its work, an attached item is a reply
    with rt.sessions() as session, session.begin():
        res = triage.resolve_triage(session, item_id=item_id, action=body.action, case_ref=body.case_ref,
                                    viewer=user, actor=user.name, reason=body.reason, customer_id=body.customer_id,
                                    doc_type=body.doc_type, case_type=body.case_type, work=work)
        outbox_ids = search_outbox.enqueue(session, item_ids=[res.item_id])  # search must follow: with the change
    search = index_now(rt, outbox_ids, what=f"triage {res.item_id} resolved")  # shown only to its case's teams
    return {"item_id": res.item_id, "outcome": res.outcome, "case_ref": res.case_ref, "doc_type": res.doc_type,
            "label_id": res.label_id, "search_index": search}
