"""Filing many items in one transaction: the file stage's fast path.

Same result as calling ``items.file_item`` for each filing, in a handful of statements per
batch instead of several per item: one look-up for items already filed (redelivery), one for
the target cases, bulk inserts for items, documents and audit events, one update of the cases'
``updated_at``. Anything unusual (a missing case, a concurrent insert) raises, and the caller
falls back to ``file_item`` one by one, which handles those cases individually.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from casestore import access
from casestore.errors import NotFound
from casestore.items import (
    IN_CHUNK,
    FiledItem,
    NewCase,
    NewDocument,
    NewItem,
    WorkHooks,
    check_filing,
    document_rows,
    item_row,
    open_new_case,
    route_to_work,
)
from casestore.models import AuditEvent, Case, Document, Item, utcnow
from casestore.validation import no_nul


@dataclass(frozen=True)
class Filing:
    item: NewItem
    documents: Sequence[NewDocument]
    outcome: str
    case_ref: str | None
    new_case: NewCase | None
    doc_type: str
    decision: dict[str, Any]


def confine_to_uploaders(session: Session, filings: Sequence[Filing]) -> list[Filing]:
    """Filings of API uploads, sent to triage where their uploader may not file (casestore.access):
    into a case they cannot see, a new case for a customer or in a team that is not theirs.

    The matcher decides on content alone, so an uploader could otherwise reach another team's
    case by quoting its reference and its customer's details.  The refused target is kept as the
    first triage candidate (so the item stays hidden from the uploader's team, rule 4) and the
    reason says why.  Other sources (connectors, ``casework ingest``) pass unchanged.
    """
    principals: dict[str, access.Principal | None] = {}
    out: list[Filing] = []
    for f in filings:
        name = access.uploaded_by(f.item.source)
        if name is None or f.outcome not in ("attached", "new_case"):
            out.append(f)
            continue
        if name not in principals:
            principals[name] = access.find_principal(session, name=name)
        refusal = access.filing_refusal(
            session, principals[name], outcome=f.outcome, case_ref=f.case_ref,
            customer_id=f.new_case.customer_id if f.new_case else None,
            team=(f.new_case.team or None) if f.new_case else None)
        if refusal is None:
            out.append(f)
            continue
        candidates = [str(c) for c in f.decision.get("candidates") or []]
        if f.case_ref and f.case_ref not in candidates:
            candidates.insert(0, f.case_ref)
        decision = {**f.decision, "candidates": candidates,
                    "reason": f"{refusal}: a person decides (the matcher said: {f.decision.get('reason', '')})",
                    "confined": {"uploaded_by": name, "refused": f.outcome, "case_ref": f.case_ref}}
        out.append(dataclasses.replace(f, outcome="triage", case_ref=None, new_case=None, decision=decision))
    return out


def _already_filed(session: Session, filings: Sequence[Filing]) -> dict[str, FiledItem]:
    """Existing items by item_id and by idempotency key."""
    found: dict[str, FiledItem] = {}
    for i in range(0, len(filings), IN_CHUNK):
        chunk = filings[i:i + IN_CHUNK]
        rows = session.execute(
            select(Item.item_id, Item.idempotency_key, Item.outcome, Item.doc_type, Case.ref)
            .outerjoin(Case, Item.case_id == Case.id)
            .where(or_(Item.item_id.in_([f.item.item_id for f in chunk]),
                       Item.idempotency_key.in_([f.item.idempotency_key for f in chunk])))
        )
        for item_id, key, outcome, doc_type, ref in rows:
            filed = FiledItem(item_id=item_id, outcome=outcome, case_ref=ref, doc_type=doc_type, duplicate=True)
            found[item_id] = found[key] = filed
    return found


def file_items(session: Session, *, filings: Sequence[Filing], actor: str,
               work: WorkHooks | None = None) -> list[FiledItem]:
    """File every filing (see ``items.file_item``, also for ``work``); results in the same order.
    May flush, never commits."""
    existing = _already_filed(session, filings)
    refs = {f.case_ref for f in filings if f.outcome == "attached" and f.case_ref}
    cases = {c.ref: c for c in session.scalars(select(Case).where(Case.ref.in_(refs)))} if refs else {}
    if work is not None and cases:
        work.prepare(session, cases=list(cases.values()))
    now = utcnow()
    results: list[FiledItem] = []
    item_rows: list[dict[str, Any]] = []
    doc_rows: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    touched: set[int] = set()
    with session.begin_nested():
        for f in filings:
            dup = existing.get(f.item.item_id) or existing.get(f.item.idempotency_key)
            if dup is not None:
                results.append(dup)
                continue
            check_filing(f.item, f.documents, f.outcome, f.case_ref, f.new_case)
            target: Case | None = None
            if f.outcome == "attached" and f.case_ref:
                target = cases.get(f.case_ref)
                if target is None:
                    raise NotFound(f"no case {f.case_ref!r} to attach item {f.item.item_id} to")
            outcome, decision = f.outcome, f.decision
            if f.outcome == "new_case" and f.new_case is not None:
                outcome, target, decision = open_new_case(session, new_case=f.new_case, item=f.item, actor=actor,
                                                          decision=decision)
                session.flush()
            outcome, target, decision = route_to_work(session, work, outcome=outcome, target=target, item=f.item,
                                                      doc_type=f.doc_type, decision=decision)
            item_rows.append(item_row(f.item, outcome, target, f.doc_type, decision, now))
            doc_rows.extend(document_rows(f.item, f.documents, target, now))
            audit_rows.append(dict(at=now, actor=actor, action="item.filed",
                                   reason=no_nul(str(decision.get("reason", ""))),
                                   case_id=target.id if target else None, item_id=f.item.item_id,
                                   details=dict(decision)))  # NULs: the store's JSON serializer
            if target is not None:
                touched.add(target.id)
            filed = FiledItem(item_id=f.item.item_id, outcome=outcome, case_ref=target.ref if target else None,
                              doc_type=f.doc_type, duplicate=False)
            # the same item twice in one batch: the second is a duplicate of the first
            existing[f.item.item_id] = existing[f.item.idempotency_key] = dataclasses.replace(filed, duplicate=True)
            results.append(filed)
        if work is not None:
            work.finish(session)
        if item_rows:
            session.execute(insert(Item), item_rows)
        if doc_rows:
            session.execute(insert(Document), doc_rows)
        if audit_rows:
            session.execute(insert(AuditEvent), audit_rows)
        if touched:
            session.execute(update(Case).where(Case.id.in_(touched)).values(updated_at=now))
    return results
