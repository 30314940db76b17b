"""Resolving triaged items: an agent attaches the item to a case, opens a new case for it, or
marks it noise.  The item's documents move with it, the audit log records the decision, and a
``MatchLabel`` row keeps it as a label for retraining the matcher and the document-type model.

``MatchLabel`` belongs in casestore/models.py (it is here until models.py takes it; the
migration 0002 creates its table).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casestore import audit, triage_leases
from casestore.access.policy import (
    Subject,
    check_may_open_case_for,
    items_hidden_from,
    sees_all,
    triage_hidden,
    visible_case,
)
from casestore.cases import open_case
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.items import WorkHooks
from casestore.models import Case, Document, Item, MatchLabel, utcnow
from casestore.validation import no_nul, optional

log = logging.getLogger(__name__)

ACTIONS = ("attach", "new_case", "noise")
_QUEUE_CHUNK = 500
_OUTCOME_OF = {"attach": "attached", "new_case": "new_case", "noise": "noise"}


@dataclass(frozen=True)
class Resolution:
    item_id: str
    outcome: str  # attached | new_case | noise
    case_ref: str | None
    doc_type: str
    label_id: int


def resolve_triage(
    session: Session,
    *,
    item_id: str,
    action: str,
    case_ref: str | None = None,
    viewer: Subject,
    actor: str,
    reason: str,
    customer_id: str | None = None,
    doc_type: str | None = None,
    case_type: str | None = None,
    work: WorkHooks | None = None,
) -> Resolution:
    """Resolve the triaged item ``item_id``: ``attach`` (to ``case_ref``), ``new_case`` (for
    ``customer_id``, a CRM id or None; type ``case_type`` or the item's doc type) or ``noise``.

    ``doc_type`` corrects the item's document type (kept as the label).  Writes audit
    'triage.resolved' (on the case, if any) and one MatchLabel.  ``viewer`` is who resolves it
    (``casestore.access.OPERATOR`` at the command line): NotFound alike for an item, case or
    customer that does not exist and one the viewer may not see or open a case for (the access
    rules 1, 3 and 4); Conflict if the item is not (or no longer) in triage, or another person holds
    it (``casestore.triage_leases``: triage is a work queue with leases); InvalidInput for a
    bad action or a missing case_ref.  Flushes, never commits.

    ``work`` (``casestore.work.inbound.InboundWork``, as the file stage's) tells the case-work
    domain, as filing the item would have: a new case starts its type's work (``case_type`` if it
    names a loaded type, else the type its document type maps to); an item attached to a case is
    the customer's reply (clocks paused for the customer resume, the review task goes to the
    case's owner), and one attached to a closed case reopens it within its type's reopen window,
    or else goes into a new case linked to it (the resolution's outcome is then ``new_case``).
    Without ``work`` (no case work wired in) the item is only filed.
    """
    if action not in ACTIONS:
        raise InvalidInput(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if action == "attach" and not (case_ref or "").strip():
        raise InvalidInput("action 'attach' needs case_ref: the case to file the item into")
    why = optional("reason", reason, max_len=2000) or ""
    item = None if "\x00" in item_id else session.get(Item, item_id, with_for_update=True)
    if item is None or items_hidden_from(session, viewer, [item_id]):
        raise NotFound(f"no item {item_id!r} (or not visible to you); check the id (casework item show ID)")
    if item.outcome != "triage":
        raise Conflict(f"item {item_id} is not in triage (it is {item.outcome!r}); nothing to resolve")
    triage_leases.check_free_for(session, item_id=item_id, who=actor, now=utcnow())  # 409 if another holds it
    predicted_outcome, predicted_type = item.outcome, item.doc_type
    new_type = optional("doc_type", doc_type, max_len=100) or item.doc_type
    decision: dict[str, Any] = dict(item.decision or {})
    candidates = [str(c) for c in decision.get("candidates", [])]

    target = None
    if action == "attach":
        target = visible_case(session, viewer, ref=str(case_ref))
    elif action == "new_case":
        check_may_open_case_for(session, viewer, customer_id=customer_id)
        target = open_case(session, customer_id=customer_id, case_type=case_type or new_type,
                           subject=(item.subject or item.filename or "")[:200], actor=actor,
                           reason=f"triage resolved: {why}" if why else "triage resolved")
    outcome = _OUTCOME_OF[action]
    if work is not None and target is not None:
        outcome, target = _tell_work(session, work, outcome=outcome, target=target, item=item, doc_type=new_type,
                                     case_type=case_type)
    now = utcnow()
    item.outcome = outcome
    item.case_id = target.id if target is not None else None
    item.doc_type = new_type
    session.execute(update(Document).where(Document.item_id == item_id)
                    .values(case_id=target.id if target is not None else None))
    if target is not None:
        target.updated_at = now
    label = MatchLabel(
        item_id=item_id, action=action, case_ref=target.ref if target is not None else None,
        customer_id=(target.customer.customer_id if target is not None and target.customer else customer_id),
        doc_type=new_type, predicted_outcome=predicted_outcome, predicted_doc_type=predicted_type,
        candidates=candidates, actor=actor, reason=no_nul(why), created_at=now,
    )
    session.add(label)
    session.flush()
    audit.record(
        session, actor=actor, action="triage.resolved", reason=no_nul(why), case=target, item_id=item_id,
        details={"action": action, "case_ref": label.case_ref, "doc_type": new_type,
                 "predicted": {"outcome": predicted_outcome, "doc_type": predicted_type},
                 "candidates": candidates, "candidate_chosen": label.case_ref in candidates},
    )
    log.info("triage item %s resolved by %s: %s %s", item_id, actor, action, label.case_ref or "-")
    return Resolution(item_id=item_id, outcome=item.outcome, case_ref=label.case_ref, doc_type=new_type,
                      label_id=label.id)


def _tell_work(session: Session, work: WorkHooks, *, outcome: str, target: Case, item: Item, doc_type: str,
               case_type: str | None) -> tuple[str, Case]:
    """What filing the item with this outcome tells the work domain; the outcome and case it ends in."""
    work.prepare(session, cases=[target])
    if outcome == "new_case":
        work.new_case(session, case=target, item_id=item.item_id, doc_type=doc_type, channel=item.channel,
                      case_type=case_type)
    else:
        goes_to, opened = work.attached(session, case=target, item_id=item.item_id, doc_type=doc_type,
                                        channel=item.channel)
        if goes_to is not target:
            outcome, target = ("new_case" if opened else "attached"), goes_to
    work.finish(session)
    return outcome, target


def doc_type_examples(session: Session, *, since_id: int = 0) -> list[tuple[str, str]]:
    """(text, doc type) per label after ``since_id``: the item's documents' text joined, the
    agent's type.  What ``DocTypeModel.retrain`` takes."""
    rows = session.execute(
        select(MatchLabel.id, MatchLabel.item_id, MatchLabel.doc_type).where(MatchLabel.id > since_id)
        .order_by(MatchLabel.id)
    ).all()
    out: list[tuple[str, str]] = []
    for _, label_item, label_type in rows:
        texts = session.scalars(select(Document.text).where(Document.item_id == label_item)
                                .order_by(Document.part_index))
        text = "\n\n".join(t for t in texts if t)
        if text.strip():
            out.append((text, label_type))
    return out


def triage_queue(session: Session, *, viewer: Subject, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Items waiting in triage that ``viewer`` may see (``casestore.access``, rule 4), oldest
    first, with the matcher's reason and ranked candidates.  ``offset`` counts visible items."""
    if not (0 <= offset < 2**63 and 0 <= limit < 2**63):
        raise InvalidInput(f"offset and limit must be between 0 and {2**63 - 1}; got offset {offset}, limit {limit}")
    query = select(Item).where(Item.outcome == "triage").order_by(Item.received_at, Item.item_id)
    if sees_all(viewer):
        visible = list(session.scalars(query.limit(limit).offset(offset)))
    else:
        visible, skipped, start = [], 0, 0
        while len(visible) < limit:  # hidden items must not use up the page: read on in chunks
            chunk = list(session.scalars(query.limit(_QUEUE_CHUNK).offset(start)))
            hidden = triage_hidden(session, viewer, chunk)
            for item in chunk:
                if item.item_id in hidden:
                    continue
                if skipped < offset:
                    skipped += 1
                elif len(visible) < limit:
                    visible.append(item)
            if len(chunk) < _QUEUE_CHUNK:
                break
            start += _QUEUE_CHUNK
    return [
        {"item_id": i.item_id, "received_at": i.received_at.isoformat(), "channel": i.channel,
         "sender": i.sender, "subject": i.subject, "doc_type": i.doc_type,
         "reason": (i.decision or {}).get("reason", ""), "candidates": (i.decision or {}).get("candidates", [])}
        for i in visible
    ]
