"""Finding an item by what a person types: its id (a UUID) or a web-form receipt number (the
first eight characters of the item id, as the web form's thank-you page shows them)."""

from __future__ import annotations

import re
import uuid

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.models import Case, Document, Item

_RECEIPT = re.compile(r"^[0-9a-f]{8}$")


class ItemHit(BaseModel):
    item_id: str
    channel: str
    subject: str | None
    filename: str | None
    outcome: str
    case_ref: str | None
    first_document_id: int | None


def looks_like_item(text: str) -> bool:
    return _as_uuid(text) is not None or bool(_RECEIPT.match(text.strip().lower()))


def _as_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


def find_items(session: Session, *, text: str) -> list[tuple[ItemHit, Case | None]]:
    """Items whose id is ``text``, or web-form items whose receipt number it is; each with its case
    (None in triage or noise) for the caller's access check."""
    exact = _as_uuid(text)
    query = select(Item, Case).outerjoin(Case, Case.id == Item.case_id)
    if exact is not None:
        query = query.where(Item.item_id == exact)
    else:
        receipt = text.strip().lower()
        if not _RECEIPT.match(receipt):
            return []
        query = query.where(Item.item_id >= receipt, Item.item_id < receipt + "~", Item.channel == "webform")
    rows = session.execute(query.limit(10)).all()
    firsts: dict[str, int] = {}
    if rows:
        for item_id, document_id in session.execute(
                select(Document.item_id, Document.id).where(Document.item_id.in_([i.item_id for i, _ in rows]),
                                                            Document.part_index == 0)):
            firsts[item_id] = document_id
    return [(ItemHit(item_id=i.item_id, channel=i.channel, subject=i.subject, filename=i.filename, outcome=i.outcome,
                     case_ref=c.ref if c is not None else None, first_document_id=firsts.get(i.item_id)), c)
            for i, c in rows]
