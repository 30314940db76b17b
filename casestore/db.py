"""Engines, sessions and schema migrations for the case store (SQLite and PostgreSQL).

SQLite connections run in WAL mode with foreign keys on, a 30 s busy timeout and
``synchronous=NORMAL``.  SQLAlchemy, not the sqlite3 driver, emits ``BEGIN``, so SAVEPOINTs and
DDL are transactional; by default it emits ``BEGIN IMMEDIATE`` so that a transaction that reads
then writes waits for the write lock up front instead of failing with "database is locked"
halfway.  A read-only caller may use ``engine.execution_options(sqlite_begin="DEFERRED")``.

``upgrade(engine)`` runs the Alembic migrations shipped inside this package; no alembic.ini is
needed at runtime.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import ARRAY, ColumnElement, Engine, any_, create_engine, event, exc, literal, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine

from casestore.errors import InvalidInput, StoreDiskFull, StoreUnavailable
from casestore.validation import no_nul

if TYPE_CHECKING:  # alembic (with mako and pygments) is imported only when migrating: ~0.2 s per process
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK_KEY = 0x6361_7365_776B  # "casewk": one advisory lock for concurrent upgrades
_SQLITE_BEGIN_MODES = {"DEFERRED", "IMMEDIATE", "EXCLUSIVE"}
SCHEMA_HEAD = "0018"  # the newest migration's revision (a test checks it against the migrations)


_NUL_ESCAPED = "\\u0000"  # how json.dumps writes a NUL character


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable; pass str, number, list or dict")


def json_dumps(value: Any) -> str:
    """The store's JSON serializer: UTF-8 text, datetimes as ISO 8601, NUL characters removed from
    every string (keys too: ``validation.no_nul``), as PostgreSQL refuses them in JSONB and SQLite
    keeps the same rule.  A NUL is always written ``\\u0000``, so the text says whether there was
    one: the common case is encoded once, not scanned beforehand by a second encoding."""
    text = json.dumps(value, default=_json_default, ensure_ascii=False)
    if _NUL_ESCAPED in text:
        text = json.dumps(no_nul(value), default=_json_default, ensure_ascii=False)
    return text


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 driver (see _sqlite_listeners), then set the pragmas.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


class _WriterTurn:
    """One writer at a time per SQLite file within this process, waiting on a mutex.

    SQLite has one writer lock; a writer that finds it taken sleeps in its busy handler (1, 2, 5,
    10 ... 100 ms) and tries again, so threads of one process queueing for it (a web server's
    workers, say) convoy: measured 235 ms p95 for a 4 ms get-next with 12 threads.  Writers of this
    process therefore take turns on a mutex (woken at once when it is released) before ``BEGIN
    IMMEDIATE``; the busy handler still arbitrates between processes.  The turn ends when the
    transaction commits or rolls back (just before, so the next writer may spin once in the busy
    handler while the COMMIT finishes).  A turn not given back within the busy timeout is
    overridden with a warning: never a deadlock, at worst the old behaviour.
    """

    _turns: dict[str, threading.Lock] = {}
    _guard = threading.Lock()

    @classmethod
    def of(cls, database: str) -> threading.Lock:
        key = str(Path(database).resolve()) if database and not database.startswith("file:") else database
        with cls._guard:
            return cls._turns.setdefault(key, threading.Lock())


def _sqlite_listeners(database: str) -> tuple[Any, Any]:
    turn = _WriterTurn.of(database) if database and database != ":memory:" else None

    def on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")).upper()
        if mode not in _SQLITE_BEGIN_MODES:
            raise InvalidInput(f"sqlite_begin must be one of {sorted(_SQLITE_BEGIN_MODES)}, not {mode!r}")
        if turn is not None and mode != "DEFERRED":
            if turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
                conn.info["writer_turn"] = True
            else:
                log.warning("an SQLite writer held its turn over %d ms; going on without it", SQLITE_BUSY_TIMEOUT_MS)
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            _end_turn(conn)
            raise

    def _end_turn(conn: Connection) -> None:
        if turn is not None and conn.info.pop("writer_turn", False):
            turn.release()

    return on_begin, _end_turn


def _has_nul(parameters: Any) -> bool:
    values = parameters.values() if isinstance(parameters, dict) else parameters
    return any(isinstance(v, str) and "\x00" in v for v in values or ())


def _refuse_nul(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    """PostgreSQL text cannot hold NUL: a value with one (a reference typed with ``%00``) is bad input,
    not a driver error (a 500). Stored values have theirs removed before (``validation.no_nul``)."""
    rows = parameters if executemany else [parameters]
    if any(_has_nul(row) for row in rows or ()):
        raise InvalidInput("a value contains a NUL character (\\x00), which the case store cannot hold or look up; "
                           "remove it and try again")


PING_AFTER_IDLE_S = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, for connections that sat idle: one that waited in the pool
    longer than ``PING_AFTER_IDLE_S`` is pinged on checkout, and a dead one is replaced (the server
    restarted, a firewall dropped it).  SQLAlchemy's ``pool_pre_ping`` pings every checkout: a
    round trip per transaction, which profiling showed in every get-next of a busy server.  A
    connection that dies while in use fails that one transaction as ``StoreUnavailable`` (retryable),
    and SQLAlchemy then drops every pooled connection made before it."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection dead after idling: {error}") from error
        if not alive:
            raise exc.DisconnectionError("pooled connection dead after idling")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """An engine for ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST/DB``.

    ``postgresql://`` and ``postgres://`` are taken to mean psycopg 3.  ``pool_size`` and
    ``max_overflow`` size PostgreSQL's connection pool: a connection beyond ``pool_size`` is opened
    for one checkout and closed after it, which costs a new server backend each time (``casework
    serve`` sizes its pool to its request threads).
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise InvalidInput(
            f"cannot parse database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Enough pooled connections for a busy API (its thread pool runs up to 40 requests): past the
        # pool, each connection is opened (four pragmas) and closed again per request.
        pool: dict[str, Any] = {"pool_size": 20, "max_overflow": 20} if database and database != ":memory:" else {}
        engine = create_engine(parsed, echo=echo, json_serializer=json_dumps, **pool)
        on_begin, end_turn = _sqlite_listeners(database)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", on_begin)
        event.listen(engine, "commit", end_turn)
        event.listen(engine, "rollback", end_turn)
        return engine
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, echo=echo, json_serializer=json_dumps,
                               pool_size=pool_size, max_overflow=max_overflow)
        event.listen(engine, "before_cursor_execute", _refuse_nul)
        _ping_when_idle(engine)
        return engine
    raise InvalidInput(
        f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


_engine_turns: WeakKeyDictionary[Engine, threading.Lock | None] = WeakKeyDictionary()  # (resolving a path costs)


def _writer_turn(engine: Engine) -> threading.Lock | None:
    """The writer turn of ``engine``'s SQLite file in this process (None: an in-memory database)."""
    if engine in _engine_turns:
        return _engine_turns[engine]
    database = engine.url.database or ""
    turn = _engine_turns[engine] = _WriterTurn.of(database) if database and database != ":memory:" else None
    return turn


class WriterBusy(Exception):
    """``sqlite_immediate(..., wait=False)``: the writer lock is taken right now (or the work would
    otherwise have to wait or take long); nothing was done: try again where waiting is fine."""


@contextmanager
def sqlite_immediate(engine: Engine, *, wait: bool = True, checkpoint: bool | None = None) -> Iterator[Any]:
    """A driver cursor (``sqlite3``) on a pooled connection, inside ``BEGIN IMMEDIATE`` with this
    process's writer turn, committed when the block ends (rolled back if it raises): the same
    transaction ``engine.begin()`` gives, without SQLAlchemy's execution layer, for a hot path whose
    statements are few and fixed (get-next: its Python time is spent while every other writer
    waits).  Driver errors come out as SQLAlchemy's (``translate_errors`` knows them).

    ``wait=False`` is for a caller that must not block (an event loop): ``WriterBusy`` at once when
    another thread holds the writer turn or another process the writer lock.  ``checkpoint=False``
    (the default with ``wait=False``): the commit does not run SQLite's automatic WAL checkpoint (a
    copy into the database file and two syncs, which the committing caller would wait for): the
    caller runs ``sqlite_checkpoint`` elsewhere, off the loop, every few hundred commits."""
    import sqlite3

    turn = _writer_turn(engine)
    if checkpoint is None:
        checkpoint = wait
    took = False
    if turn is not None:
        took = turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000) if wait else turn.acquire(blocking=False)
        if not took:
            if not wait:
                raise WriterBusy("another thread of this process holds the SQLite writer turn")
            log.warning("an SQLite writer held its turn over %d ms; going on without it", SQLITE_BUSY_TIMEOUT_MS)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                if wait:
                    cursor.execute("BEGIN IMMEDIATE")
                else:
                    cursor.execute("PRAGMA busy_timeout = 0")
                    try:
                        cursor.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError as error:
                        if (getattr(error, "sqlite_errorcode", 0) & 0xFF) in (5, 6):  # BUSY, LOCKED
                            raise WriterBusy(str(error)) from error
                        raise
                    finally:
                        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                try:
                    yield cursor
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                if took and turn is not None:  # as _sqlite_listeners: the turn ends just before COMMIT
                    turn.release()
                    took = False
                if not checkpoint:
                    cursor.execute("PRAGMA wal_autocheckpoint = 0")
                try:
                    cursor.execute("COMMIT")
                except BaseException:
                    raw.rollback()
                    raise
                finally:
                    if not checkpoint:
                        cursor.execute("PRAGMA wal_autocheckpoint = 1000")  # SQLite's default, as every connection has
            except sqlite3.Error as error:
                raise exc.DBAPIError.instance(None, None, error, sqlite3.Error) from error
            finally:
                cursor.close()
        finally:
            raw.close()
    finally:
        if took and turn is not None:
            turn.release()


class DriverQuery:
    """A Core ``SELECT`` compiled once per dialect and run on a driver cursor, its values converted
    by SQLAlchemy's own type processors (parameters and results): the rows a ``Session`` would give,
    without the execution layer (for a statement on every request of a hot route, such as a bearer
    token's check or PostgreSQL's get-next).  On PostgreSQL a text parameter with a NUL character is
    refused as the engine's ``before_cursor_execute`` listener refuses it (``InvalidInput``).
    Partial: no expanding (``IN``) parameters."""

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self._compiled: WeakKeyDictionary[Any, tuple[str, bool, list[tuple[str, Any]], list[Any], Any]] = \
            WeakKeyDictionary()

    def _for(self, dialect: Any) -> tuple[str, bool, list[tuple[str, Any]], list[Any], Any]:
        found = self._compiled.get(dialect)
        if found is None:
            compiled = self.stmt.compile(dialect=dialect)
            columns = list(self.stmt.selected_columns)
            names = list(compiled.positiontup) if compiled.positiontup is not None else list(compiled.binds)
            found = (str(compiled), compiled.positiontup is not None,
                     [(name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                      for name in names],
                     [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns],
                     namedtuple("Row", [c.key for c in columns]))
            self._compiled[dialect] = found
        return found

    def first(self, cursor: Any, dialect: Any, params: dict[str, Any]) -> Any:
        """The first row (attributes by column key), or None."""
        sql, positional, binds, readers, row_type = self._for(dialect)
        values = [write(params[name]) if write is not None else params[name] for name, write in binds]
        if dialect.name == "postgresql":
            _refuse_nul(None, cursor, sql, values, None, False)  # as the engine's listener: InvalidInput
        row = cursor.execute(sql, values if positional else dict(zip((n for n, _ in binds), values,
                                                                     strict=True))).fetchone()
        if row is None:
            return None
        return row_type(*[read(v) if read is not None else v for read, v in zip(readers, row, strict=True)])


@contextmanager
def driver_cursor(engine: Engine) -> Iterator[Any]:
    """A driver cursor on a pooled connection, outside any transaction (SQLite: each statement its
    own, as autocommit; PostgreSQL: the connection in autocommit for the block, so a statement is
    one round trip, with no BEGIN and no ROLLBACK when the connection goes back to the pool).
    PostgreSQL's driver errors come out as SQLAlchemy's (``translate_errors`` knows them), and a
    connection they show broken is dropped from the pool."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name != "postgresql":
            cursor = raw.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            return
        driver = raw.driver_connection
        dbapi = engine.dialect.dbapi
        assert driver is not None and dbapi is not None
        driver.autocommit = True
        try:
            with driver.cursor() as cursor:
                yield cursor
        except dbapi.Error as error:
            if engine.dialect.is_disconnect(error, driver, None):
                raw.invalidate(error)
            raise exc.DBAPIError.instance(None, None, error, dbapi.Error,
                                          connection_invalidated=not raw.is_valid) from error
        finally:
            if raw.is_valid and not driver.closed:
                driver.autocommit = False  # as the pool hands connections out
    finally:
        raw.close()


WAL_RESTART_FRAMES = 1000  # SQLite's own automatic checkpoint starts at this many frames in the WAL
WAL_SECOND_PASS_WAIT_MS = 5  # the second pass gives up (the WAL restarts after a later one) rather than wait longer


def sqlite_checkpoint(engine: Engine, *, second_pass: bool = True) -> tuple[int, int, int]:
    """A WAL checkpoint on a pooled connection, for commits made with the automatic one switched
    off (``sqlite_immediate(checkpoint=False)``); SQLite's ``(busy, frames in the WAL, frames copied)``.

    A passive checkpoint (it never waits for readers or writers) copies the WAL's pages into the
    database file and syncs both, while this process's writers go on committing.  That alone lets
    the WAL grow without end under a steady stream of commits: SQLite writes the WAL from its start
    again only when a write transaction begins with every frame already copied, and the commits
    made while the checkpoint ran are never copied by then (measured: 170 MB of WAL in 30 s of
    get-next at 150/s, and every other connection's commit then ran a checkpoint of its own, since
    the automatic one looks at the WAL's length).  So once the WAL holds ``WAL_RESTART_FRAMES``
    frames, a second passive pass copies what was committed meanwhile and ``sqlite_wal_second_pass``
    the rest with the writer turn held, so that the next write starts the WAL from its beginning
    (the file keeps its size and is reused).  ``second_pass=False``: not the last step; the caller
    runs it when it sees ``wal_wants_second_pass`` of the result (get-next's fast path does, so that
    its claims wait for it on the event loop rather than in the threadpool)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= WAL_RESTART_FRAMES and not busy:
            busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        raw.close()
    result = int(busy), int(frames), int(copied)
    if second_pass and wal_wants_second_pass(result):
        return sqlite_wal_second_pass(engine)
    return result


def wal_wants_second_pass(result: tuple[int, int, int]) -> bool:
    """Whether a checkpoint's result says the WAL is long enough to be started again."""
    busy, frames, _ = result
    return frames >= WAL_RESTART_FRAMES and not busy


def sqlite_wal_second_pass(engine: Engine) -> tuple[int, int, int]:
    """The last step of ``sqlite_checkpoint``: with this process's writer turn held, a ``FULL``
    checkpoint (it also waits for a commit still in flight: the turn ends just before COMMIT) copies
    the frames committed since the passive passes, so that the next write restarts the WAL.  This
    process's writers wait for it on the turn (the copy of a few pages and two syncs).  When it
    cannot have SQLite's writer lock or an old reader's snapshot within ``WAL_SECOND_PASS_WAIT_MS``
    (another process writing, a long read), it gives up, and the WAL restarts after a later one."""
    turn = _writer_turn(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if turn is not None and not turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            return 1, -1, -1
        began = time.perf_counter()
        cursor.execute(f"PRAGMA busy_timeout = {WAL_SECOND_PASS_WAIT_MS}")
        try:
            busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if turn is not None:
                turn.release()
        log.debug("WAL checkpoint: second pass of %d frames with the writer turn held %.1f ms (busy %d)",
                  frames, 1000 * (time.perf_counter() - began), busy)
        return int(busy), int(frames), int(copied)
    finally:
        raw.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (callers often read what they just wrote)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped in this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (head by default); a no-op when already there.

    Runs in one transaction.  On PostgreSQL an advisory lock serialises concurrent upgrades;
    on SQLite the write lock taken by ``BEGIN IMMEDIATE`` does.
    """
    if revision in ("head", SCHEMA_HEAD) and _at_head(engine):
        return  # the common start-up: no need to load alembic at all
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("case store schema at %s", revision)


def _at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    except exc.DBAPIError:  # no version table yet (a new database), or unreachable: let alembic say
        return False


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at (None if never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


_RETRYABLE_SQLSTATE_PREFIXES = ("08", "40", "53", "57", "55P03")
_RETRYABLE_SQLITE_CODES = {5, 6, 10, 13, 14}  # BUSY, LOCKED, IOERR, FULL, CANTOPEN


_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def is_disk_full(error: BaseException) -> bool:
    """Whether a driver error says the database's disk is full (by its code, not its text)."""
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) == _SQLITE_FULL
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def is_retryable(error: BaseException) -> bool:
    """Whether a driver error means "try again later" (unreachable, locked, deadlock, disk full)."""
    if isinstance(error, exc.TimeoutError):  # connection pool exhausted
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error, exc.InterfaceError):
        return True
    orig = error.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return (sqlite_code & 0xFF) in _RETRYABLE_SQLITE_CODES
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_RETRYABLE_SQLSTATE_PREFIXES)
    return isinstance(error, exc.OperationalError)  # e.g. connection refused: no SQLSTATE yet


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn "database unreachable, locked or deadlocked" driver errors into ``StoreUnavailable``.

    For the owner of a transaction (request, consumer handler, CLI command) to wrap around its
    work and its commit, so the dead-letter policy and exit codes see ``retryable``.  Other
    driver errors pass through unchanged.
    """
    try:
        yield
    except (exc.DBAPIError, exc.TimeoutError) as e:
        if not is_retryable(e):
            raise
        orig = getattr(e, "orig", None) or e
        if is_disk_full(e):
            raise StoreDiskFull(
                f"disk full at the case store's database: could not write ({str(orig).strip()[:200]})"
            ) from e
        raise StoreUnavailable(
            f"the case store is unavailable or busy ({type(orig).__name__}: {str(orig).strip()[:200]}); "
            "retry later, and check the database is running if it persists"
        ) from e


def in_values(session: Session, column: Any, values: list[Any],
              item_type: TypeEngine[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one bound array instead of
    one parameter per value.  A 500-value IN list is rendered, then parsed again by psycopg, on
    every call (the statement differs with the list's length, so neither SQLAlchemy's nor
    psycopg's cache holds it): that cost more CPU than PostgreSQL took to run the query.
    ``item_type`` is the array's element type (``String()``, ``Integer()``)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(ColumnElement[bool], column == any_(literal(values, ARRAY(item_type))))
    return cast(ColumnElement[bool], column.in_(values))
