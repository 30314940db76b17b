from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from casestore.db import make_engine, session_factory, translate_errors
from casestore.errors import InvalidInput, StoreUnavailable
from tests.ports import free_port


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")  # creates the folder
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


def test_sqlite_savepoint_rolls_back_inside_a_real_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                nested = conn.begin_nested()
                conn.exec_driver_sql("INSERT INTO t VALUES (2)")
                nested.rollback()
            assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
            conn.rollback()
            tx = conn.begin()
            conn.exec_driver_sql("CREATE TABLE u (y INTEGER)")  # DDL is transactional too
            tx.rollback()
            assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name='u'").scalar() == 0
    finally:
        engine.dispose()


def test_postgres_urls_use_psycopg() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"):
        engine = make_engine(url)
        assert engine.url.drivername == "postgresql+psycopg"
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(InvalidInput, match="sqlite:///PATH"):
        make_engine(url)


@pytest.mark.postgres
def test_unreachable_postgres_is_store_unavailable() -> None:
    port = free_port()  # nothing listens here
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=2")
    try:
        with pytest.raises(StoreUnavailable) as info, translate_errors(), engine.connect():
            pass
        assert info.value.retryable and info.value.http_status == 503
    finally:
        engine.dispose()


def test_translate_errors_passes_other_errors_through(engine: Engine) -> None:
    with pytest.raises((ProgrammingError, OperationalError)), translate_errors(), engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))


def test_session_factory_keeps_values_after_commit(engine: Engine) -> None:
    make = session_factory(engine)
    with make() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
        s.commit()


def test_sqlite_writers_queue_and_deferred_readers_do_not(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        writer = engine.connect()
        writer.begin()  # BEGIN IMMEDIATE: holds the write lock
        writer.exec_driver_sql("INSERT INTO t VALUES (1)")
        reader_engine = engine.execution_options(sqlite_begin="DEFERRED")
        with reader_engine.connect() as reader:  # reads the last committed state without waiting
            assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        with engine.connect() as other:
            driver = other.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout = 50")  # don't wait the full 30 s here (no BEGIN)
            with pytest.raises(StoreUnavailable, match="retry later"), translate_errors():
                other.begin()
        writer.rollback()
        writer.close()
    finally:
        engine.dispose()


def test_a_pooled_postgres_connection_killed_while_idle_is_replaced_on_checkout(
        monkeypatch: pytest.MonkeyPatch, _postgres_db: tuple[str, Engine]) -> None:
    """No ping on every checkout (a round trip per transaction), but an idle connection whose server
    backend went away is found out and replaced before anyone uses it."""
    monkeypatch.setattr("casestore.db.PING_AFTER_IDLE_S", 0.0)
    eng = make_engine(_postgres_db[0], pool_size=1, max_overflow=0)
    try:
        with eng.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with _postgres_db[1].connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar() is True
        with eng.connect() as conn:  # would raise OperationalError on the dead connection without the ping
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second != first
    finally:
        eng.dispose()
