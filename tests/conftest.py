"""Database fixtures shared by every test package: real SQLite and real PostgreSQL.

- ``db_url``: the URL of a migrated, empty case store; parametrized over ``sqlite`` (a fresh
  file per test, copied from a template migrated once) and ``postgres`` (marked
  ``postgres``; one database ``casework_test_<hex>`` per test session, created through the
  ``postgres`` database and dropped at the end, emptied after every test).  Deselect
  PostgreSQL with ``-m "not postgres"``; point at another server with ``CASEWORK_TEST_PG_URL``.
- ``blank_db_url``: like ``db_url`` but never migrated (PostgreSQL: a database of its own).
- ``engine``: ``make_engine(db_url)`` after ``upgrade()``; disposed after the test.
- ``session``: a Session inside a transaction that is rolled back after the test; code under
  test may ``commit()`` (it releases a SAVEPOINT only).
- ``sessions``: a sessionmaker for tests that need real commits (concurrency); what they
  commit is removed after the test.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from casestore.db import make_engine, session_factory, upgrade
from casestore.models import Base
from casestore.outbound import models as _outbound_models  # noqa: F401 - outbound tables are in Base.metadata too
from casestore.search import models as _search_models  # noqa: F401 - the search outbox too
from casestore.signin import models as _signin_models  # noqa: F401 - and the sign-in tables
from casestore.work import models as _work_models  # noqa: F401 - work tables are in Base.metadata too
from tests.kafka_broker import fresh_kafka_broker, kafka_broker  # noqa: F401 - fixtures for every test package
from tests.s3_server import s3_bucket, s3_server  # noqa: F401 - a real S3 endpoint (moto_server) for every package

PG_ADMIN_URL = os.environ.get("CASEWORK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class _Postgres:
    """Creates and drops databases on the test server through its maintenance database."""

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(make_url(admin_url).set(drivername="postgresql+psycopg"),
                                   isolation_level="AUTOCOMMIT")
        try:
            with self.admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as e:
            self.admin.dispose()
            pytest.fail(
                f"PostgreSQL is not reachable at {self.admin.url.render_as_string()}: {e.orig}\n"
                "start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), "
                "set CASEWORK_TEST_PG_URL, or deselect with -m 'not postgres'",
                pytrace=False,
            )

    def create(self) -> str:
        name = f"casework_test_{secrets.token_hex(6)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_Postgres]:
    server = _Postgres(PG_ADMIN_URL)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="session")
def _postgres_db(_postgres: _Postgres) -> Iterator[tuple[str, Engine]]:
    """The session's database, migrated, and an engine used to empty it between tests."""
    url = _postgres.create()
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()
    _postgres.drop(url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


def _empty_postgres(engine: Engine) -> None:
    """Remove every row a test committed (TRUNCATE does not fire the audit DELETE trigger)."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    any_rows = " OR ".join(f"EXISTS (SELECT 1 FROM {t})" for t in tables)
    with engine.begin() as conn:
        if conn.execute(text(f"SELECT {any_rows}")).scalar():
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "casework.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url, cleaner = request.getfixturevalue("_postgres_db")
    yield url
    _empty_postgres(cleaner)


@pytest.fixture(params=DB_PARAMS)
def blank_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server: _Postgres = request.getfixturevalue("_postgres")
    url = server.create()
    yield url
    server.drop(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    conn = engine.connect()
    outer = conn.begin()
    sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        conn.close()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
