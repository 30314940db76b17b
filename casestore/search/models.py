"""The search outbox table: what the index still has to take in from the store.

Created by migration 0011.  ``casestore.search.outbox`` owns it; see that module for who writes
and who drains the rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casestore.models import Base, utcnow


class SearchOutboxEntry(Base):
    """One change the index has not taken in yet: an item's documents, or a case's documents."""

    __tablename__ = "search_outbox"
    __table_args__ = (
        CheckConstraint("(item_id IS NULL) <> (case_ref IS NULL)", name="one_target"),
        Index("ix_search_outbox_due", "next_attempt_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str | None] = mapped_column(String(36))  # index this item's documents
    case_ref: Mapped[str | None] = mapped_column(String(64))  # re-index every document of this case
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
