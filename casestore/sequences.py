"""Race-free number allocation for case references: one row per prefix in ``ref_sequences``.

Allocation is a single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement: on
PostgreSQL the row lock it takes serialises concurrent allocators until their transactions
end; on SQLite the database write lock does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from casestore.errors import CaseStoreError
from casestore.models import RefSequence


def _insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(RefSequence)
    if name == "sqlite":
        return sqlite.insert(RefSequence)
    raise CaseStoreError(f"reference allocation is not implemented for {name}; use SQLite or PostgreSQL")


def next_number(session: Session, *, prefix: str) -> int:
    """Hand out the next number for ``prefix`` (1 for a new prefix)."""
    stmt = (
        _insert(session)
        .values(prefix=prefix, next_value=2)
        .on_conflict_do_update(
            index_elements=[RefSequence.prefix], set_={"next_value": RefSequence.next_value + 1}
        )
        .returning(RefSequence.next_value)
    )
    return int(session.execute(stmt).scalar_one()) - 1


def reserve(session: Session, *, prefix: str, number: int) -> None:
    """Make sure ``number`` (taken by an imported reference) is never handed out."""
    base = _insert(session).values(prefix=prefix, next_value=number + 1)
    greatest = func.greatest if session.get_bind().dialect.name == "postgresql" else func.max
    stmt = base.on_conflict_do_update(
        index_elements=[RefSequence.prefix],
        set_={"next_value": greatest(RefSequence.next_value, base.excluded.next_value)},
    )
    session.execute(stmt)
