"""Filing inbound items and their documents (idempotently), and reading them back.

``file_item`` is the file stage's one write: item row, its documents, maybe a new case, one
audit event, all in the caller's transaction.  Redelivery of the same item (same ``item_id``
or idempotency key) writes nothing and reports ``duplicate=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import String, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casestore import audit
from casestore.cases import get_case, open_case
from casestore.customers import prospect_customer
from casestore.db import in_values
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import OUTCOMES, AuditEvent, Case, Document, Item, ItemFailure, utcnow
from casestore.validation import as_utc, no_nul

log = logging.getLogger(__name__)

IN_CHUNK = 500  # bound parameters per IN (...) list


@dataclass(frozen=True)
class NewItem:
    item_id: str
    idempotency_key: str
    channel: str
    received_at: datetime
    source: str
    filename: str | None
    blob_sha256: str | None
    content_type: str | None
    size: int
    metadata: dict[str, Any] = field(default_factory=dict)  # include message_id for email threading
    sender: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class NewDocument:
    part_index: int
    kind: str
    title: str
    filename: str | None
    content_type: str | None
    blob_sha256: str | None
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class NewProspect:
    """Who wrote an item from a person not yet known, as the classifier read it."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    postcode: str | None = None


@dataclass(frozen=True)
class NewCase:
    customer_id: str | None  # CRM id, None for an unknown person
    case_type: str
    subject: str
    team: str | None = None
    prospect: NewProspect | None = None  # with customer_id None: kept as a prospect customer (open_new_case)


def open_new_case(session: Session, *, new_case: NewCase, item: NewItem, actor: str,
                  decision: dict[str, Any]) -> tuple[str, Case, dict[str, Any]]:
    """The case a 'new_case' filing goes into: outcome, case and decision.

    A person not yet known who said who they are (``new_case.prospect``) gets a customer
    (``customers.prospect_customer``), so the case shows who wrote and their next item matches
    them.  When that person turns out to be known already (an earlier item of theirs was filed
    after this one was classified, as in one batch) and has exactly one open case of this type,
    the item is attached to it rather than opening a second one.
    """
    customer_id = new_case.customer_id
    if customer_id is None and new_case.prospect is not None:
        p = new_case.prospect
        customer, created = prospect_customer(session, key=item.item_id, name=p.name, email=p.email, phone=p.phone,
                                              address=p.address, postcode=p.postcode, actor=actor)
        customer_id = customer.customer_id
        decision = {**decision, "customer_id": customer_id,
                    "prospect": {"customer_id": customer_id, "created": created}}
        if not created:
            same = list(session.scalars(select(Case).where(Case.customer_id == customer.id, Case.status != "closed",
                                                           Case.case_type == new_case.case_type).limit(2)))
            if len(same) == 1:
                reason = (f"the writer ({customer.name}) is known since this item was classified; their only open "
                          f"{new_case.case_type} case is {same[0].ref}")
                return "attached", same[0], {**decision, "reason": reason}
    case = open_case(session, customer_id=customer_id, case_type=new_case.case_type, subject=new_case.subject,
                     actor=actor, reason=str(decision.get("reason", "")), team=new_case.team)
    return "new_case", case, decision


class WorkHooks(Protocol):
    """What filing tells the case-work domain, inside the filing transaction (implemented by
    ``casestore.work.inbound.InboundWork``; declared here because casestore's domains do not
    import ``work``)."""

    def prepare(self, session: Session, *, cases: Sequence[Case]) -> None:
        """Items are about to be filed into these cases (a batch): load what they will need at once."""

    def new_case(self, session: Session, *, case: Case, item_id: str, doc_type: str, channel: str,
                 case_type: str | None = None) -> None:
        """A case was opened for this item: start its work (of ``case_type`` when that names a
        loaded case type, else of the type ``doc_type`` maps to)."""

    def finish(self, session: Session) -> None:
        """Write what the hooks buffered for this batch (before the filing's own rows)."""

    def status_changed(self) -> Sequence[str]:
        """Cases whose status (open, pending, closed) the last batch changed: after the commit,
        their documents in the search index follow."""

    def attached(self, session: Session, *, case: Case, item_id: str, doc_type: str,
                 channel: str) -> tuple[Case, bool]:
        """The item is filed into ``case``: a customer reply.  Returns the case the item goes
        into (``case``, or a case linked to it when ``case`` closed too long ago to reopen) and
        whether that case was opened for this item."""


def route_to_work(session: Session, work: WorkHooks | None, *, outcome: str, target: Case | None, item: NewItem,
                  doc_type: str, decision: dict[str, Any]) -> tuple[str, Case | None, dict[str, Any]]:
    """Tell the work domain about a filing; the outcome, case and decision the item is filed with."""
    if work is None or target is None:
        return outcome, target, decision
    if outcome == "new_case":
        work.new_case(session, case=target, item_id=item.item_id, doc_type=doc_type, channel=item.channel)
    elif outcome == "attached":
        goes_to, opened = work.attached(session, case=target, item_id=item.item_id, doc_type=doc_type,
                                        channel=item.channel)
        if goes_to is not target:
            return "new_case" if opened else "attached", goes_to, {**decision, "linked_from": target.ref}
    return outcome, target, decision


@dataclass(frozen=True)
class FiledItem:
    item_id: str
    outcome: str
    case_ref: str | None
    doc_type: str
    duplicate: bool


def _already_filed(session: Session, item: NewItem) -> FiledItem | None:
    row = session.execute(
        select(Item.item_id, Item.outcome, Item.doc_type, Case.ref)
        .outerjoin(Case, Item.case_id == Case.id)
        .where(or_(Item.item_id == item.item_id, Item.idempotency_key == item.idempotency_key))
        .limit(1)
    ).first()
    if row is None:
        return None
    item_id, outcome, doc_type, ref = row
    return FiledItem(item_id=item_id, outcome=outcome, case_ref=ref, doc_type=doc_type, duplicate=True)


def check_filing(item: NewItem, documents: Sequence[NewDocument], outcome: str, case_ref: str | None,
                 new_case: NewCase | None) -> None:
    """InvalidInput unless the outcome, case and documents fit together (shared with batch filing)."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if outcome == "attached" and not case_ref:
        raise InvalidInput("outcome 'attached' needs the case_ref of the case to file into")
    if outcome == "new_case" and new_case is None:
        raise InvalidInput("outcome 'new_case' needs new_case (customer, case type, subject)")
    indexes = [d.part_index for d in documents]
    if len(set(indexes)) != len(indexes):
        raise InvalidInput(f"item {item.item_id}: document part_index values repeat: {indexes}")
    if not item.item_id or not item.idempotency_key:
        raise InvalidInput("item_id and idempotency_key are required")


def file_item(
    session: Session,
    *,
    item: NewItem,
    documents: Sequence[NewDocument],
    outcome: str,
    case_ref: str | None,
    new_case: NewCase | None,
    doc_type: str,
    decision: dict[str, Any],
    actor: str,
    work: WorkHooks | None = None,
) -> FiledItem:
    """File ``item`` and its documents: into ``case_ref`` ('attached'), into a case opened now
    ('new_case'), or into no case ('triage', 'noise').  Idempotent; see the module docstring.
    ``work`` (the file stage's) starts a new case's work, or records a reply to an existing case
    (which may reopen it, or open a new linked case: the outcome is then 'new_case').

    NotFound if ``case_ref`` does not exist; InvalidInput for inconsistent arguments.
    """
    existing = _already_filed(session, item)
    if existing is not None:
        log.info("item %s already filed (%s); nothing written", existing.item_id, existing.outcome)
        return existing
    check_filing(item, documents, outcome, case_ref, new_case)
    target = get_case(session, ref=case_ref) if outcome == "attached" and case_ref else None
    try:
        with session.begin_nested():
            if outcome == "new_case" and new_case is not None:
                outcome, target, decision = open_new_case(session, new_case=new_case, item=item, actor=actor,
                                                          decision=decision)
            outcome, target, decision = route_to_work(session, work, outcome=outcome, target=target, item=item,
                                                      doc_type=doc_type, decision=decision)
            if work is not None:
                work.finish(session)
            _insert(session, item, documents, outcome, target, doc_type, decision)
            audit.record(
                session, actor=actor, action="item.filed", reason=no_nul(str(decision.get("reason", ""))),
                case=target, item_id=item.item_id, details=no_nul(dict(decision)),
            )
    except IntegrityError as e:
        existing = _already_filed(session, item)
        if existing is None:
            raise Conflict(f"item {item.item_id} could not be filed ({e.orig}); retry it") from e
        log.info("item %s was filed concurrently; returning that as a duplicate", item.item_id)
        return existing
    log.info("item %s filed: %s %s", item.item_id, outcome, target.ref if target else "-")
    return FiledItem(item_id=item.item_id, outcome=outcome, case_ref=target.ref if target else None,
                     doc_type=doc_type, duplicate=False)


def item_row(item: NewItem, outcome: str, case: Case | None, doc_type: str, decision: dict[str, Any],
             now: datetime) -> dict[str, Any]:
    """The ``items`` row of a filing (shared with ``casestore.filing``'s batch path)."""
    return dict(
        item_id=item.item_id, idempotency_key=item.idempotency_key, channel=item.channel,
        received_at=as_utc(item.received_at), source=no_nul(item.source or ""), filename=no_nul(item.filename),
        blob_sha256=item.blob_sha256, content_type=item.content_type, size=item.size,
        meta=dict(item.metadata), sender=no_nul(item.sender), subject=no_nul(item.subject),
        outcome=outcome, case_id=case.id if case else None, doc_type=doc_type, decision=dict(decision),
        filed_at=now,
    )


def document_rows(item: NewItem, documents: Sequence[NewDocument], case: Case | None,
                  now: datetime) -> list[dict[str, Any]]:
    """The ``documents`` rows of a filing (shared with ``casestore.filing``'s batch path)."""
    return [
        dict(
            item_id=item.item_id, case_id=case.id if case else None, part_index=d.part_index, kind=d.kind,
            title=no_nul(d.title or ""), filename=no_nul(d.filename), content_type=d.content_type,
            blob_sha256=d.blob_sha256, text=no_nul(d.text or ""), fields=dict(d.fields),
            error=no_nul(d.error), created_at=now,
        )
        for d in documents
    ]


def _insert(session: Session, item: NewItem, documents: Sequence[NewDocument], outcome: str,
            case: Case | None, doc_type: str, decision: dict[str, Any]) -> None:
    now = utcnow()
    if case is not None and case.id is None:
        session.flush()  # a case opened in this transaction gets its id
    session.execute(insert(Item), [item_row(item, outcome, case, doc_type, decision, now)])
    rows = document_rows(item, documents, case, now)
    if rows:
        session.execute(insert(Document), rows)
    if case is not None:
        case.updated_at = now
    session.flush()


def record_failure(
    session: Session, *, item_id: str | None, stage: str, error_class: str, message: str, source: str = "",
    failed_at: datetime | None = None,
) -> None:
    """Record one dead-lettered attempt at processing an item; ``failed_at``: the dead letter's own
    time (so a replay or discard recorded up to that letter covers this row too), else now."""
    session.add(ItemFailure(
        item_id=item_id, stage=stage[:50], error_class=error_class[:200], message=no_nul(message),
        source=no_nul(source or ""), failed_at=as_utc(failed_at) if failed_at is not None else utcnow(),
    ))
    session.flush()
    log.info("item %s failed in %s: %s", item_id, stage, error_class)


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start:start + IN_CHUNK]


def outcomes(session: Session, *, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{item_id: {outcome, case_ref, doc_type, error}}`` for every known id in ``item_ids``.

    Filed items win; an item that only has failures reports outcome 'failed' with its last
    error, when it failed (``failed_at``) and the failure's id (``failure_id``, increasing), so a
    caller can tell a new failure from an old one (compare with ``last_failure_id``).
    Unknown ids (still in the pipeline) are absent.  Two queries per 500 ids.
    """
    result: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(item_ids):
        rows = session.execute(
            select(Item.item_id, Item.outcome, Item.doc_type, Case.ref)
            .outerjoin(Case, Item.case_id == Case.id)
            .where(in_values(session, Item.item_id, chunk, String()))
        )
        for item_id, outcome, doc_type, ref in rows:
            result[item_id] = {"outcome": outcome, "case_ref": ref, "doc_type": doc_type, "error": None}
        missing = [i for i in chunk if i not in result]
        if not missing:
            continue
        failures = session.execute(
            select(ItemFailure.item_id, ItemFailure.error_class, ItemFailure.message, ItemFailure.failed_at,
                   ItemFailure.id)
            .where(in_values(session, ItemFailure.item_id, missing, String()))
            .order_by(ItemFailure.id)
        )
        for failed_id, error_class, message, failed_at, failure_id in failures:  # the last one per item wins
            result[str(failed_id)] = {"outcome": "failed", "case_ref": None, "doc_type": None,
                                    "error": f"{error_class}: {message}", "failed_at": failed_at,
                                    "failure_id": failure_id}
    return result


def last_failure_id(session: Session) -> int:
    """The id of the newest recorded failure (0 if none): failures with a higher id happened
    after this call, whatever the clocks of the machines that recorded them say."""
    return int(session.scalar(select(func.max(ItemFailure.id))) or 0)


def _failures(session: Session, item_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ItemFailure).where(ItemFailure.item_id == item_id).order_by(ItemFailure.failed_at, ItemFailure.id)
    )
    return [
        {"stage": f.stage, "error_class": f.error_class, "message": f.message, "source": f.source,
         "failed_at": f.failed_at.isoformat()}
        for f in rows
    ]


def item_view(session: Session, *, item_id: str) -> dict[str, Any]:
    """The item, where it was filed, its documents with their extracted text, and its failures.

    ``text`` joins all documents' text with blank lines.  An item that only failed comes back
    with outcome 'failed'; NotFound if the item was neither filed nor failed.
    """
    if "\x00" in item_id:  # no item id holds one, and PostgreSQL refuses it in a query
        raise NotFound(f"no item {item_id!r}; item ids look like 8c6071be-9774-5672-8ec7-e361e402123b")
    row = session.execute(
        select(Item, Case.ref).outerjoin(Case, Item.case_id == Case.id).where(Item.item_id == item_id)
    ).first()
    failures = _failures(session, item_id)
    if row is None:
        if not failures:
            raise NotFound(f"no item {item_id!r} has been filed or has failed; it may still be in the pipeline")
        return {
            "item_id": item_id, "channel": None, "received_at": None, "source": failures[-1]["source"],
            "filename": None, "content_type": None, "size": None, "sender": None, "subject": None, "metadata": {},
            "outcome": "failed", "case_ref": None, "doc_type": None, "decision": None, "filed_at": None,
            "documents": [], "text": "", "failures": failures,
        }
    item, ref = row
    docs = session.scalars(select(Document).where(Document.item_id == item_id).order_by(Document.part_index))
    documents: list[dict[str, Any]] = [
        {"document_id": d.id, "part_index": d.part_index, "kind": d.kind, "title": d.title,
         "filename": d.filename, "content_type": d.content_type, "blob_sha256": d.blob_sha256,
         "text": d.text, "fields": d.fields, "error": d.error}
        for d in docs
    ]
    return {
        "item_id": item.item_id, "channel": item.channel, "received_at": item.received_at.isoformat(),
        "source": item.source, "filename": item.filename, "content_type": item.content_type,
        "size": item.size, "sender": item.sender, "subject": item.subject, "metadata": dict(item.meta or {}),
        "outcome": item.outcome,
        "case_ref": ref, "doc_type": item.doc_type, "decision": item.decision,
        "filed_at": item.filed_at.isoformat(), "documents": documents,
        "text": "\n\n".join(d["text"] for d in documents if d["text"]),
        "failures": failures,
    }


DEAD_LETTER_ACTIONS = ("dlq.replayed", "dlq.discarded")


def record_dead_letter_action(session: Session, *, key: str, stage: str, action: str, up_to: datetime,
                              actor: str, reason: str = "") -> None:
    """Record that a person replayed or discarded an item's dead letters in ``stage``, up to the
    letter that failed at ``up_to``: an audit event, so the dead-letter list hides what was handled
    and a later replay does not publish the same letter twice."""
    if action not in DEAD_LETTER_ACTIONS:
        raise InvalidInput(f"dead-letter action {action!r} is not one of {', '.join(DEAD_LETTER_ACTIONS)}")
    audit.record(session, actor=actor, action=action, reason=reason, item_id=key[:36],
                 details={"key": key, "stage": stage, "up_to": as_utc(up_to).isoformat()})


class HandledLetter(NamedTuple):
    action: str  # dlq.replayed or dlq.discarded
    up_to: datetime  # the newest letter it covered failed then
    at: datetime  # when it was recorded: a failure recorded later is a new one


def dead_letter_actions(session: Session, *, keys: Sequence[str]) -> dict[tuple[str, str], HandledLetter]:
    """``{(key, stage): (action, up_to, at)}``: the newest replay or discard recorded for each entry of
    these keys (read through the audit trail's item index, 500 keys a query)."""
    rows: list[Any] = []
    for chunk in _chunks([k[:36] for k in keys]):
        rows.extend(session.execute(
            select(AuditEvent.id, AuditEvent.action, AuditEvent.details, AuditEvent.at)
            .where(AuditEvent.item_id.in_(chunk), AuditEvent.action.in_(DEAD_LETTER_ACTIONS))
        ).all())
    handled: dict[tuple[str, str], HandledLetter] = {}
    for _, action, details, at in sorted(rows, key=lambda r: r[0]):
        try:
            key, stage, up_to = str(details["key"]), str(details["stage"]), datetime.fromisoformat(details["up_to"])
        except (KeyError, TypeError, ValueError):
            log.warning("audit event %s has unreadable details %r; ignored", action, details)
            continue
        handled[(key, stage)] = HandledLetter(str(action), up_to, as_utc(at))
    return handled
