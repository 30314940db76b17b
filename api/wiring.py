"""The composition root: settings in, adapters out. The only place that knows which parts run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings, get_settings
from casestore.db import make_engine, session_factory, upgrade
from ingest.blobs import BlobStore, open_blob_store
from ingest.bus.factory import open_bus
from ingest.bus.port import Bus

# The stages, the matcher and search are imported where they are opened: `casework ingest` on Kafka
# and most commands need none of them, and their imports were a third of every command's start-up.
if TYPE_CHECKING:
    from casestore.outbound.task_outbox import OutboxForTasks
    from casestore.search.outbox import OutboxDrainer
    from casestore.search.port import SearchIndex
    from casestore.work.clocks import Calendars
    from casestore.work.setup import WorkSetup
    from classify.matcher import Matcher
    from ingest.pipeline import PipelineParts
    from ingest.runner import StageParts
    from ingest.spam import SpamdCheck

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    blobs: BlobStore
    _closers: list[Bus] = field(default_factory=list)
    _indexes: list[SearchIndex] = field(default_factory=list)

    @cached_property
    def bus(self) -> Bus:
        s = self.settings.bus
        bus = open_bus(s.url, data_dir=self.settings.data_dir, partitions=s.partitions,
                       retention_hours=s.retention_hours, session_timeout_ms=s.session_timeout_ms,
                       heartbeat_interval_ms=s.heartbeat_interval_ms, max_poll_interval_ms=s.max_poll_interval_ms)
        self._closers.append(bus)
        return bus

    @cached_property
    def work(self) -> WorkSetup:
        """Calendars and case types, loaded and checked once per process; each type's version is
        stored (a running case keeps the version it started with).  Loading writes in a
        transaction of its own: touch this before opening a write transaction (SQLite has one
        writer)."""
        from api.outbound_parts import templates
        from casestore.cel_grammar import warm_parser
        from casestore.work.setup import load_setup

        warm_parser()  # CEL's parser from lark's cache: ~0.1 CPU s less in every process loading case types
        calendars = self.calendars
        with self.sessions() as session, session.begin():
            return load_setup(session, case_types_dir=self.settings.case_types_dir, calendars=calendars,
                              templates=templates(self.settings))

    @cached_property
    def statement_sessions(self) -> sessionmaker[Session]:
        """Sessions for a read of ONE statement (a bearer token's check on every request): on
        PostgreSQL in autocommit, so the read is one round trip instead of BEGIN, SELECT and
        ROLLBACK (profiling get-next showed each round trip waiting on the GIL on the way back);
        on SQLite the ``read_sessions``.  Not for reads of several statements that must agree."""
        if self.engine.dialect.name != "postgresql":
            return self.read_sessions
        return session_factory(self.engine.execution_options(isolation_level="AUTOCOMMIT"))

    @cached_property
    def calendars(self) -> Calendars:
        """The business calendars by name (what the engine needs to move a case's SLA clocks)."""
        from casestore.work.calendar_config import load_calendars

        return load_calendars(self.settings.calendars_dir)

    def reload_work(self) -> None:
        """Load the calendars and case types again (a calendar or a definition changed) and use them
        from now on: requests read ``calendars`` and ``work`` anew, the file stage at its next batch.
        A folder that no longer loads raises (``CalendarError``, ``DefinitionError``) and the
        running configuration stays."""
        from api.outbound_parts import templates
        from casestore.work.calendar_config import load_calendars
        from casestore.work.setup import load_setup

        calendars = load_calendars(self.settings.calendars_dir)
        with self.sessions() as session, session.begin():
            setup = load_setup(session, case_types_dir=self.settings.case_types_dir, calendars=calendars,
                               templates=templates(self.settings))
        self.__dict__["calendars"] = calendars  # what the cached properties return from now on
        self.__dict__["work"] = setup

    @cached_property
    def task_outbox(self) -> OutboxForTasks:
        """The outbox the work engine queues a task's messages in (``on_complete.send``) and asks
        (``requires_outbound``): the same policy and templates as a reply from the case."""
        from api.outbound_parts import outbox_policy, templates
        from casestore.outbound.task_outbox import OutboxForTasks

        return OutboxForTasks(policy=outbox_policy(self.settings), templates=templates(self.settings))

    @cached_property
    def search_index(self) -> SearchIndex:
        from casestore.search.factory import open_search_index

        index = open_search_index(self.settings.search.url, self.settings.data_dir,
                                  self.settings.search.access())
        self._indexes.append(index)
        return index

    @cached_property
    def search_drainer(self) -> OutboxDrainer:
        """Writes search outbox rows to the index (casestore.search.outbox); one per process, so a
        failure pauses every drain of this process until the backoff ends."""
        from casestore.search.outbox import OutboxDrainer

        return OutboxDrainer(self.sessions, self.search_index, backoff_max_s=self.settings.search.outbox_backoff_max_s)

    def matcher(self) -> Matcher:
        from classify.doctype import DocTypeClassifier
        from classify.matcher import Matcher

        config = self.settings.match.to_config()
        model = None
        path = self.settings.doc_type_model_path
        if path.is_file():
            from classify.doctype_model import DocTypeModel  # scikit-learn: ~2 s to import, only when needed

            model = DocTypeModel.load(path)
            log.info("document-type model loaded from %s", path)
        return Matcher(config, DocTypeClassifier(model=model, min_model_score=config.doc_type_model_min))

    def stage_parts(self) -> StageParts:
        """What the extract stage needs (and every stage): cheap, nothing of classify or file is
        imported or loaded, so `casework ingest` starts reading before those are ready."""
        from ingest.runner import StageParts
        from ingest.worker import RetryPolicy

        w = self.settings.worker
        return StageParts(
            bus=self.bus, blobs=self.blobs, sessions=self.sessions, read_sessions=self.read_sessions,
            limits=self.settings.extract,
            retry=RetryPolicy(max_attempts=w.max_attempts, backoff_initial_s=w.backoff_initial_s,
                              backoff_max_s=w.backoff_max_s),
            batch_size=w.batch_size, extract_batch_size=w.extract_batch_size, file_batch_size=w.file_batch_size,
        )

    def pipeline_parts(self, *, with_search: bool = True) -> PipelineParts:
        """What the stages need; ``with_search=False`` for processes without the file stage (which
        need neither the search index nor the case-work definitions)."""
        from casestore.work.inbound import InboundWork
        from ingest.pipeline import PipelineParts

        base = self.stage_parts()
        return PipelineParts(
            **{f.name: getattr(base, f.name) for f in fields(base)},
            matcher=self.matcher(),
            search_index=self.search_index if with_search else None,
            work=InboundWork(self.work, current=lambda: self.work) if with_search else None,
            spam=self.spam_check(),
        )

    def spam_check(self) -> SpamdCheck | None:
        """spamd for the classify stage, when ``CASEWORK_SPAM__SPAMD`` names one."""
        spam = self.settings.spam
        if not spam.spamd:
            return None
        from ingest.spam import SpamdCheck  # aiospamc: ~0.6 s to import, only when configured

        return SpamdCheck(address=spam.spamd, blobs=self.blobs, timeout_s=spam.timeout_s, min_score=spam.min_score,
                          max_bytes=spam.max_bytes, concurrency=spam.concurrency)

    def close(self) -> None:
        for bus in self._closers:
            bus.close()
        self._closers.clear()
        for index in self._indexes:
            index.close()
        self._indexes.clear()
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, migrate: bool = True) -> Runtime:
    """Create the data directory, open the store (migrated to head) and the blob store (the one
    ``blobs.url`` names: the data directory's files by default, or an S3 bucket)."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url, pool_size=settings.db.pool_size, max_overflow=settings.db.max_overflow)
    if migrate:
        upgrade(engine)
    return Runtime(settings=settings, engine=engine, sessions=session_factory(engine),
                   read_sessions=session_factory(engine.execution_options(sqlite_begin="DEFERRED")),
                   blobs=open_blob_store(settings.blobs.url, data_dir=settings.data_dir,
                                         s3=settings.blobs.s3_options()))
