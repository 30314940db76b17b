"""SQLAlchemy 2.0 models of the case store.

Types are portable between SQLite and PostgreSQL: timestamps are stored in UTC and always come
back timezone-aware (``UTCDateTime``); JSON is ``JSON`` on SQLite and ``JSONB`` on PostgreSQL.
The schema itself is created by the Alembic migrations in ``casestore/migrations``; a test
checks that models and migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

CASE_STATUSES = ("open", "pending", "closed")
OUTCOMES = ("attached", "new_case", "triage", "noise")
ROLES = ("agent", "supervisor", "admin", "integration")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC; naive values are taken to be UTC already."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no offset; we only ever store UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Customer(Base):
    """A person or organisation from the CRM; ``customer_id`` is the CRM's id."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320), index=True)  # stored lower-case
    phone: Mapped[str | None] = mapped_column(String(64))  # as given
    phone_normalised: Mapped[str | None] = mapped_column(String(32), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    postcode: Mapped[str | None] = mapped_column(String(32))  # as given
    postcode_normalised: Mapped[str | None] = mapped_column(String(32), index=True)
    account_number: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # a prospect retired into the CRM's customer (casestore.prospects); None for every live customer
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))


class ProspectLink(Base):
    """A prospect customer (``P-...``) that a CRM customer's email or phone matched, and what
    became of it: ``merged`` (automatically, or by a person), ``review`` (a person decides),
    ``dismissed`` (a person said they are not the same).  One row per pair: re-imports find it."""

    __tablename__ = "prospect_links"
    __table_args__ = (UniqueConstraint("prospect_id", "customer_id"),
                      CheckConstraint("state IN ('merged', 'review', 'dismissed')", name="state"),
                      Index("ix_prospect_links_state", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prospect_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    matched_on: Mapped[str] = mapped_column(String(32))  # email | phone | email_name_differs
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))


NAME_WORD_MAX = 100


def name_words(name: str) -> list[str]:
    """The words of a customer's name as the name look-up keys them: lower-case, split on white
    space, each at most ``NAME_WORD_MAX`` characters, each once."""
    return list(dict.fromkeys(w[:NAME_WORD_MAX] for w in name.lower().split()))


class CustomerNameWord(Base):
    """One word of a customer's name: an index for finding customers by surname without scanning
    every name.  Kept in step with ``Customer.name`` by ``casestore.customers.upsert_customer``."""

    __tablename__ = "customer_name_words"

    word: Mapped[str] = mapped_column(String(NAME_WORD_MAX), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True,
                                             index=True)


class Case(Base):
    """A case: its reference is legacy (imported, kept as given) or own format ``CW-YYYY-NNNNNN-C``."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("status", CASE_STATUSES), name="status"),
        Index("ix_cases_customer_id_status", "customer_id", "status"),
        Index("ix_cases_updated_at", "updated_at", "id"),  # the case list, newest first (0009)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    case_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    team: Mapped[str | None] = mapped_column(String(100))  # None: any team may see it
    restricted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    legacy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer | None] = relationship(lazy="joined")


class Item(Base):
    """One inbound thing (email, scan, file, SMS...) and where it was filed; or, with
    ``direction='out'``, one message we sent from a case (``casestore.outbound``)."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        Index("ix_items_outbound", "received_at", sqlite_where=text("direction = 'out'"),
              postgresql_where=text("direction = 'out'")),
    )

    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(1000), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    filename: Mapped[str | None] = mapped_column(Text)
    blob_sha256: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    sender: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    doc_type: Mapped[str] = mapped_column(String(100))
    decision: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    filed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # 'in': from the outside world; 'out': a message we sent (casestore.outbound keeps its
    # delivery state here in step with the outbox, so the folder shows it without that domain).
    direction: Mapped[str] = mapped_column(String(3), default="in", server_default="in")
    delivery_state: Mapped[str | None] = mapped_column(String(16))

    case: Mapped[Case | None] = relationship()


class Document(Base):
    """One readable part of an item, filed in a case folder (or not, for triage and noise)."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("item_id", "part_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    part_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text, default="", server_default="")
    filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(200))
    blob_sha256: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="", server_default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only: triggers reject UPDATE and DELETE on this table (see the migration)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_item_id", "item_id", sqlite_where=text("item_id IS NOT NULL"),
                            postgresql_where=text("item_id IS NOT NULL")),
                      Index("ix_audit_events_notices", "id", sqlite_where=text("action = 'sla.notify'"),
                            postgresql_where=text("action = 'sla.notify'")))  # the notification feed (0018)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    item_id: Mapped[str | None] = mapped_column(String(36))  # indexed where not null (most events have none)
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ItemFailure(Base):
    """One dead-lettered attempt at processing an item."""

    __tablename__ = "item_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str | None] = mapped_column(String(36), index=True)
    stage: Mapped[str] = mapped_column(String(50))
    error_class: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    teams: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiToken(Base):
    """A bearer token, stored only as the sha256 hex of the token.  ``expires_at`` None: never;
    ``last_used_at`` is written in batches (casestore.token_use), so it may lag a minute."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    label: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class RefSequence(Base):
    """The next number to hand out per reference prefix (``CW-2025``)."""

    __tablename__ = "ref_sequences"

    prefix: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer)


class MatchLabel(Base):
    """How a person resolved a triaged item: the label the matcher and doc-type model learn from."""

    __tablename__ = "match_labels"
    __table_args__ = (CheckConstraint("action IN ('attach', 'new_case', 'noise')", name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    case_ref: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(100))  # CRM id
    doc_type: Mapped[str] = mapped_column(String(100))  # the type the agent confirmed or corrected
    predicted_outcome: Mapped[str] = mapped_column(String(16))
    predicted_doc_type: Mapped[str] = mapped_column(String(100))
    candidates: Mapped[list[str]] = mapped_column(JSONType, default=list)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TriageClaim(Base):
    """Who works a triage item now: a lease like a task's (``casestore.triage_leases``).  A row whose
    lease ran out is free for the next get-next; resolving the item deletes it."""

    __tablename__ = "triage_claims"

    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id", ondelete="CASCADE"), primary_key=True)
    assignee: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime]
    lease_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by every claim
