from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from casestore import audit
from casestore.db import SCHEMA_HEAD, head_revision, make_engine, schema_revision, upgrade
from casestore.models import AuditEvent, Base

TABLES = {"customers", "cases", "items", "documents", "notes", "audit_events", "item_failures", "users",
          "api_tokens", "ref_sequences", "customer_name_words", "case_type_versions", "case_work", "tasks",
          "sla_clocks", "user_passwords", "web_sessions",
          "login_failures", "outbound_messages", "flagged_addresses", "search_outbox", "prospect_links",
          "notification_marks"}
EXPRESSION_INDEXES = ("ix_tasks_pick",)


def test_upgrade_from_nothing_then_again_is_a_no_op(blank_db_url: str) -> None:
    engine = make_engine(blank_db_url)
    try:
        assert schema_revision(engine) is None
        upgrade(engine)
        assert schema_revision(engine) == head_revision() == SCHEMA_HEAD == "0018"
        tables = set(inspect(engine).get_table_names())
        assert tables >= TABLES
        upgrade(engine)
        assert schema_revision(engine) == SCHEMA_HEAD
        assert set(inspect(engine).get_table_names()) == tables
    finally:
        engine.dispose()


def test_name_words_are_backfilled_for_customers_stored_before_0003(blank_db_url: str) -> None:
    engine = make_engine(blank_db_url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO customers (customer_id, name, created_at, updated_at) VALUES "
                              "('C-1', 'Jane  van Dijk', :now, :now), ('C-2', 'JANE Doe', :now, :now)"),
                         {"now": "2026-01-01 00:00:00+00:00"})
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT c.customer_id, w.word FROM customer_name_words w "
                                     "JOIN customers c ON c.id = w.customer_id ORDER BY 1, 2")).all()
        assert [tuple(r) for r in rows] == [("C-1", "dijk"), ("C-1", "jane"), ("C-1", "van"),
                                            ("C-2", "doe"), ("C-2", "jane")]
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(blank_db_url: str) -> None:
    from alembic import command

    from casestore.db import alembic_config

    engine = make_engine(blank_db_url)
    try:
        upgrade(engine)
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_models_match_the_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        diff = compare_metadata(context, Base.metadata)
    # Alembic cannot compare an index with an expression (``urgency DESC``): it reports it as
    # removed and added again.  That index is checked by name and columns below instead.
    diff = [d for d in diff if not (isinstance(d, tuple) and d[0] in ("add_index", "remove_index")
                                    and d[1].name in EXPRESSION_INDEXES)]
    assert diff == []
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("tasks")}
    assert set(EXPRESSION_INDEXES) <= set(indexes)


def test_audit_events_reject_update_and_delete(session: Session) -> None:
    event = audit.record(session, actor="tester", action="case.updated", reason="because", details={"a": 1})
    for verb, statement in (
        ("UPDATE", "UPDATE audit_events SET reason = 'rewritten'"),
        ("DELETE", "DELETE FROM audit_events"),
    ):
        with pytest.raises(DatabaseError, match=rf"append-only.*\({verb} refused\)"), session.begin_nested():
            session.execute(text(statement))
    assert session.get(AuditEvent, event.id) is not None
    session.expire_all()
    assert session.scalars(text("SELECT reason FROM audit_events")).all() == ["because"]


def test_audit_orm_update_is_rejected_too(session: Session) -> None:
    event = audit.record(session, actor="tester", action="note.added")
    with pytest.raises(DatabaseError, match="append-only"), session.begin_nested():
        event.actor = "someone else"
        session.flush()
