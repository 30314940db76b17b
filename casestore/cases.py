"""Cases: imported with their legacy reference, or opened here with an own-format reference."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from casestore import audit, refs, sequences
from casestore.customers import require_customer
from casestore.errors import CaseStoreError, Conflict, InvalidInput, NotFound
from casestore.models import CASE_STATUSES, AuditEvent, Case, Document, Item, Note, utcnow
from casestore.validation import as_utc, optional, required, text_or_none

log = logging.getLogger(__name__)

_MAX_REF_SKIPS = 10_000


def check_status(status: str) -> str:
    cleaned = (status or "").strip().lower()
    if cleaned not in CASE_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(CASE_STATUSES)}")
    return cleaned


def find_case(session: Session, *, ref: str) -> Case | None:
    if "\x00" in ref:  # no stored reference holds one, and PostgreSQL refuses it in a query
        return None
    return session.scalar(select(Case).where(Case.ref == ref.strip()))


def get_case(session: Session, *, ref: str) -> Case:
    """The case with exactly this reference; NotFound otherwise."""
    case = find_case(session, ref=ref)
    if case is None:
        raise NotFound(
            f"no case with reference {ref.strip()!r}; check the reference "
            "(references opened here look like CW-2025-000123-K)"
        )
    return case


def allocate_ref(session: Session, *, year: int) -> str:
    """A new own-format reference for ``year``, never one already used (e.g. by an import)."""
    prefix = refs.year_prefix(year)
    for _ in range(_MAX_REF_SKIPS):
        number = sequences.next_number(session, prefix=prefix)
        if number > refs.MAX_NUMBER:
            raise CaseStoreError(f"all {refs.MAX_NUMBER} case numbers for {year} are used; widen the format")
        ref = refs.format_ref(year, number)
        if find_case(session, ref=ref) is None:
            return ref
        log.warning("case reference %s is taken already (imported?); skipping it", ref)
    raise CaseStoreError(f"could not find a free case reference for {year}; check ref_sequences")


def open_case(
    session: Session,
    *,
    customer_id: str | None,
    case_type: str,
    subject: str,
    actor: str,
    reason: str,
    team: str | None = None,
) -> Case:
    """Open a new case with an own-format reference for the current year (audit 'case.opened').

    ``customer_id`` is the CRM id, or None when the person is not (yet) known.
    """
    clean_type = required("case_type", case_type, max_len=100)
    clean_team = optional("team", team, max_len=100)
    customer = require_customer(session, customer_id=customer_id)
    now = utcnow()
    case = Case(
        ref=allocate_ref(session, year=now.year),
        customer=customer,
        case_type=clean_type,
        status="open",
        subject=text_or_none(subject) or "",
        team=clean_team,
        restricted=False,
        legacy=False,
        opened_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="case.opened",
        reason=reason,
        case=case,
        details={"case_type": case.case_type, "customer_id": customer.customer_id if customer else None,
                 "team": case.team},
    )
    log.info("case %s opened by %s", case.ref, actor)
    return case


def upsert_case(
    session: Session,
    *,
    ref: str,
    customer_id: str | None,
    case_type: str,
    status: str = "open",
    opened_at: datetime | None = None,
    subject: str = "",
    team: str | None = None,
    actor: str = "import",
) -> tuple[Case, bool]:
    """Create or update a case by its reference, kept as given (legacy); bool = created.

    Audit: 'case.imported' when created, 'case.updated' (with the changed fields) when an
    update changes something.  ``opened_at`` None means now for a new case and "unchanged"
    for an existing one; ``team`` None likewise leaves an existing case's team alone.
    InvalidInput for an unknown customer (import customers first) or a bad status.
    """
    clean_ref = required("ref", ref, max_len=64)
    customer = require_customer(session, customer_id=customer_id)
    values: dict[str, Any] = {
        "customer_id": customer.id if customer else None,
        "case_type": required("case_type", case_type, max_len=100),
        "status": check_status(status),
        "subject": text_or_none(subject) or "",
    }
    if opened_at is not None:
        values["opened_at"] = as_utc(opened_at)
    if team is not None:
        values["team"] = optional("team", team, max_len=100)
    parsed = refs.parse_ref(clean_ref)
    if parsed is not None:  # an own-format reference from an earlier export: never hand it out again
        sequences.reserve(session, prefix=refs.year_prefix(parsed[0]), number=parsed[1])

    case = find_case(session, ref=clean_ref)
    if case is None:
        now = utcnow()
        case = Case(ref=clean_ref, legacy=True, restricted=False, opened_at=now, updated_at=now)
        for key, value in values.items():
            setattr(case, key, value)
        case.customer = customer
        try:
            with session.begin_nested():
                session.add(case)
        except IntegrityError as e:  # imported concurrently by another transaction
            case = find_case(session, ref=clean_ref)
            if case is None:
                raise Conflict(f"case {clean_ref!r} could not be stored ({e.orig}); retry the import") from e
        else:
            details = {"customer_id": customer_id, "case_type": case.case_type, "status": case.status}
            audit.record(
                session, actor=actor, action="case.imported", reason="imported with its existing reference",
                case=case, details=details,
            )
            return case, True

    changed = {key: value for key, value in values.items() if getattr(case, key) != value}
    if changed:
        diff = {key: [_jsonable(getattr(case, key)), _jsonable(value)] for key, value in changed.items()}
        if "customer_id" in diff:  # show CRM ids, not row ids
            diff["customer_id"] = [case.customer.customer_id if case.customer else None,
                                   customer.customer_id if customer else None]
        for key, value in changed.items():
            setattr(case, key, value)
        if "customer_id" in changed:
            case.customer = customer
        case.updated_at = utcnow()
        audit.record(session, actor=actor, action="case.updated", reason="re-imported", case=case,
                     details={"changed": diff})
    return case, False


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def case_folder(session: Session, *, ref: str) -> dict[str, Any]:
    """The case's electronic folder as a JSON-able dict: the case, its customer, its documents
    (without their text; ``text_chars`` says how long it is), notes and audit trail, in time order.
    Each document says its ``direction`` ('in', or 'out' for a message we sent, with its
    ``delivery_state`` and the agent who sent it as ``sender``).

    The same object is served by ``GET /api/v1/cases/{ref}`` and ``casework case show REF --json``.
    """
    case = get_case(session, ref=ref)
    customer = case.customer
    doc_rows = session.execute(
        select(Document, Item.channel, Item.received_at, Item.doc_type, func.length(Document.text), Item.direction,
               Item.delivery_state, Item.sender, Item.meta)
        .join(Item, Document.item_id == Item.item_id)
        .where(Document.case_id == case.id)
        .order_by(Item.received_at, Item.item_id, Document.part_index)
        .options(defer(Document.text), defer(Document.fields))
    ).all()
    notes = session.scalars(select(Note).where(Note.case_id == case.id).order_by(Note.created_at, Note.id))
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.at, AuditEvent.id)
    )
    return {
        "ref": case.ref,
        "status": case.status,
        "case_type": case.case_type,
        "subject": case.subject,
        "team": case.team,
        "restricted": case.restricted,
        "opened_at": _iso(case.opened_at),
        "updated_at": _iso(case.updated_at),
        "customer": None if customer is None else {
            "customer_id": customer.customer_id,
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "address": customer.address,
            "postcode": customer.postcode,
            "account_number": customer.account_number,
        },
        "documents": [
            {
                "document_id": doc.id,
                "item_id": doc.item_id,
                "part_index": doc.part_index,
                "kind": doc.kind,
                "title": doc.title,
                "filename": doc.filename,
                "content_type": doc.content_type,
                "blob_sha256": doc.blob_sha256,
                "channel": channel,
                "received_at": _iso(received_at),
                "doc_type": doc_type,
                "text_chars": int(text_chars or 0),
                "direction": direction,
                "delivery_state": delivery_state,
                "sender": sender,
                "sent_at": (meta or {}).get("sent_at"),
                "captured_at": (meta or {}).get("captured_at"),
            }
            for doc, channel, received_at, doc_type, text_chars, direction, delivery_state, sender, meta in doc_rows
        ],
        "notes": [
            {"note_id": n.id, "author": n.author, "body": n.body, "created_at": _iso(n.created_at)} for n in notes
        ],
        "audit": [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "reason": e.reason,
                "item_id": e.item_id,
                "details": e.details,
            }
            for e in events
        ],
    }
