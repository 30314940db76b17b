"""Reading documents out of the case store as ``IndexedDoc``, and the checkpoint file of bulk jobs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from casestore.models import Case, Customer, Document, Item
from casestore.search.port import MAX_TEXT_CHARS, IndexedDoc

IN_CHUNK = 500  # bound parameters per IN (...) list


def documents_query() -> Select[Any]:
    """Every column an ``IndexedDoc`` needs, document text cut at ``MAX_TEXT_CHARS`` in SQL."""
    return (
        select(Document.id, Document.item_id, Document.title, func.substr(Document.text, 1, MAX_TEXT_CHARS),
               Item.channel, Item.doc_type, Item.received_at, Case.ref, Case.status, Case.team, Case.restricted,
               Customer.customer_id, Customer.name, Item.meta)
        .join(Item, Document.item_id == Item.item_id)
        .outerjoin(Case, Document.case_id == Case.id)
        .outerjoin(Customer, Case.customer_id == Customer.id)
    )


def to_indexed(row: Any) -> IndexedDoc:
    (document_id, item_id, title, text, channel, doc_type, received_at, ref, status, team, restricted,
     customer_id, customer_name, meta) = row
    return IndexedDoc(
        document_id=int(document_id), item_id=item_id, case_ref=ref, customer_id=customer_id,
        customer_name=customer_name, title=title or "", text=text or "", channel=channel, doc_type=doc_type,
        received_at=received_at, case_status=status, teams=(team,) if team else (),
        restricted=bool(restricted), sent_at=own_date(meta, "sent_at"), captured_at=own_date(meta, "captured_at"),
    )


def own_date(meta: Any, key: str) -> datetime | None:
    """An ISO date-time the pipeline kept in the item's metadata (``sent_at``, ``captured_at``), or None."""
    value = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start:start + IN_CHUNK]


def documents_for_index(session: Session, *, document_ids: Sequence[int] = (), item_ids: Sequence[str] = (),
                        case_ref: str | None = None) -> list[IndexedDoc]:
    """The store's documents with these ids, of these items, or of this case, in id order."""
    out: list[IndexedDoc] = []
    for chunk in chunks(document_ids):
        out.extend(to_indexed(r) for r in session.execute(documents_query().where(Document.id.in_(chunk))))
    for chunk in chunks(item_ids):
        out.extend(to_indexed(r) for r in session.execute(documents_query().where(Document.item_id.in_(chunk))))
    if case_ref is not None:
        query = documents_query().where(Case.ref == case_ref)
        out.extend(to_indexed(r) for r in session.execute(query))
    unique = {d.document_id: d for d in out}
    return [unique[k] for k in sorted(unique)]


@dataclass
class Checkpoint:
    """A small JSON file written atomically after each committed batch; absent when not in a job."""

    path: Path | None

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.exists():
            return None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
