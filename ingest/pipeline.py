"""The three pipeline stages (extract, classify, file) and the runner that drives them in-process.

Each stage is idempotent on ``item_id``:

* extract skips items already filed (a re-ingested file is a duplicate, not new work);
* classify only reads the store;
* file writes the item, its documents and the audit event in one transaction, and
  ``casestore.items.file_item`` returns the existing outcome when the item is already there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

import ingest.extract.dispatch  # noqa: F401  (the readers: loaded with the stages, not in the first batch)
from casestore import items as item_service
from casestore.db import translate_errors
from casestore.filing import Filing, confine_to_uploaders, file_items
from casestore.items import WorkHooks
from casestore.lookup import StoreLookup
from casestore.outbound.services import record_bounce
from casestore.search import outbox as search_outbox
from casestore.search.outbox import OutboxDrainer
from casestore.search.port import SearchIndex
from classify.lookup import MemoLookup
from classify.match_types import MatchResult
from classify.matcher import Matcher, MatchInput
from classify.writer import Writer
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.errors import Unavailable
from ingest.extract import Extraction, extract
from ingest.extract.limits import ExtractLimits
from ingest.faults import fault_point
from ingest.intake import TRUSTED_BY
from ingest.log_context import about
from ingest.messages import (
    FILED_OUTCOMES,
    TOPIC_CLASSIFIED,
    TOPIC_EXTRACTED,
    TOPIC_RAW,
    ClassifiedItem,
    DeadLetter,
    Decision,
    ExtractedItem,
    Prospect,
    RawItem,
)
from ingest.worker import Output, RetryPolicy, Worker

if TYPE_CHECKING:
    from ingest.spam import SpamdCheck  # aiospamc is imported only when spamd is configured

log = logging.getLogger(__name__)

MAX_CLASSIFY_CHARS = 200_000
LEFTOVER_AGE_S = 5.0  # outbox rows older than this are no longer another stage's batch in flight


class ExtractStage:
    """Reads the items of a poll in parallel: ``prepare`` starts each one's extraction on a pool of
    ``ocr_processes`` threads (default one per core), and the worker's per-message ``handle_batch``
    collects them in order, so a slow scan does not keep the other cores idle while the worker's
    per-item policy (retry, dead letter) stays as it is. The threads mostly wait for tesseract
    processes (at most ``ocr_processes`` of them at once in this process, ``ingest.extract.ocr``)
    and for the PDF reader child (one, its calls serialised). A retry extracts again in the worker's
    thread. When ``stop`` (the worker's stop flag) is set, the items being read are finished and
    those not yet begun are not begun: they raise a retryable error, which the worker, stopping,
    leaves uncommitted, so the batch is delivered again and the stage ends within its grace period."""

    name = "extract"
    in_topic = TOPIC_RAW
    batched = False  # extraction errors are per file; no batch fast path to gain
    linger_s = 0.0

    def __init__(self, *, blobs: BlobStore, limits: ExtractLimits, sessions: sessionmaker[Session],
                 stop: threading.Event | None = None) -> None:
        self.blobs = blobs
        self.limits = limits
        self.sessions = sessions
        self.stop = stop or threading.Event()
        self.workers = limits.ocr_workers()
        self._pool: ThreadPoolExecutor | None = None
        self._started: dict[str, Future[Extraction]] = {}
        self._filed: set[str] = set()

    def prepare(self, messages: Sequence[RawItem]) -> None:
        """One store look-up per poll: which of these items are already filed; start reading the others."""
        with self.sessions() as session:
            known = item_service.outcomes(session, item_ids=[m.item_id for m in messages])
        self._filed = {i for i, info in known.items() if info.get("outcome") in FILED_OUTCOMES}
        self._forget_started()
        todo = {m.item_id: m for m in messages if m.item_id not in self._filed}
        if self.workers > 1 and len(todo) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="extract")
            self._started = {item_id: self._pool.submit(self._extract_unless_stopping, raw)
                             for item_id, raw in todo.items()}

    def _extract_unless_stopping(self, raw: RawItem) -> Extraction:
        if self.stop.is_set():
            raise Unavailable(f"item {raw.item_id} not read: the extract stage is stopping; it will be read again")
        return self._extract(raw)

    def _extract(self, raw: RawItem) -> Extraction:
        with about(item_id=raw.item_id):  # OCR and parser warnings name the item (in a pool thread too)
            data = self.blobs.read(raw.blob_sha256)
            return extract(data, filename=raw.filename, content_type=raw.content_type, blobs=self.blobs,
                           limits=self.limits)

    def _forget_started(self) -> None:
        """Drop what an earlier poll started and nobody collected (its batch failed as a whole)."""
        for future in self._started.values():
            future.cancel()
        self._started = {}

    def handle_batch(self, messages: Sequence[RawItem]) -> list[Output]:
        out: list[Output] = []
        for raw in messages:
            if raw.item_id in self._filed:
                log.debug("item %s already filed; not extracting again", raw.item_id)
                continue
            started = self._started.pop(raw.item_id, None)
            result = started.result() if started is not None else self._extract(raw)
            fault_point("mid_extract")
            item = ExtractedItem(**raw.model_dump(), parts=result.parts, email=result.email,
                                 warnings=result.warnings)
            out.append((TOPIC_EXTRACTED, raw.item_id, item))
        return out


class ClassifyStage:
    name = "classify"
    in_topic = TOPIC_EXTRACTED
    batched = True
    linger_s = 0.0

    def __init__(self, *, matcher: Matcher, sessions: sessionmaker[Session], spam: SpamdCheck | None = None) -> None:
        self.matcher = matcher
        self.sessions = sessions
        self.spam = spam  # spamd, asked only about mail that would open a case for a stranger

    def prepare(self, messages: Sequence[ExtractedItem]) -> None:
        pass

    def handle_batch(self, messages: Sequence[ExtractedItem]) -> list[Output]:
        results: list[MatchResult] = []
        with self.sessions() as session:
            lookup = MemoLookup(StoreLookup(session))  # one snapshot per batch: ask each question once
            inputs = [match_input(item) for item in messages]
            found = self.matcher.prefetch(inputs, lookup)  # the batch's references and senders: one query each
            for item, given, entities in zip(messages, inputs, found, strict=True):
                with about(item_id=item.item_id):
                    results.append(self.matcher.decide(given, lookup, entities))
        if self.spam is not None:
            results = self._spam_checked(messages, results)
        out: list[Output] = []
        for item, result in zip(messages, results, strict=True):
            decision = Decision(
                outcome=result.outcome,
                case_ref=result.case_ref, customer_id=result.customer_id, doc_type=result.doc_type,
                case_type=result.case_type, reason=result.reason, evidence=result.evidence,
                candidates=result.candidates, prospect=prospect_of(result.writer),
            )
            classified = ClassifiedItem(**item.model_dump(), decision=decision)
            out.append((TOPIC_CLASSIFIED, item.item_id, classified))
        return out

    def _spam_checked(self, messages: Sequence[ExtractedItem], results: list[MatchResult]) -> list[MatchResult]:
        """Mail about to open a case for someone unknown is scored by spamd; spam becomes noise."""
        assert self.spam is not None
        asking = [i for i, (item, r) in enumerate(zip(messages, results, strict=True))
                  if r.outcome == "new_case" and r.customer_id is None and item.email is not None
                  and not item.email.spam_verdict]
        answers = self.spam.check([messages[i] for i in asking])
        out = list(results)
        for i, answer in zip(asking, answers, strict=True):
            evidence = {**results[i].evidence,
                        "spam_check": {"score": answer.score, "error": answer.error, "verdict": answer.verdict}}
            if answer.verdict:
                evidence["spam_verdict"] = answer.verdict
                evidence["rule"] = "spam verdict"
                out[i] = MatchResult(outcome="noise", reason=f"spam by content ({answer.verdict}) from a sender we "
                                                              "do not know: no case", evidence=evidence,
                                     doc_type=results[i].doc_type)
            else:
                out[i] = dataclasses.replace(results[i], evidence=evidence)
        return out


def prospect_of(writer: Writer | None) -> Prospect | None:
    if writer is None:
        return None
    return Prospect(name=writer.name, email=writer.email, phone=writer.phone, address=writer.address,
                    postcode=writer.postcode)


def match_input(item: ExtractedItem) -> MatchInput:
    email = item.email
    text = "\n\n".join(p.text for p in item.parts if p.text)[:MAX_CLASSIFY_CHARS]
    return MatchInput(
        channel=item.channel,
        subject=(email.subject if email else "") or item.metadata.get("subject", ""),
        text=text,
        sender_email=(email.from_addr if email else None) or item.metadata.get("sender_email"),
        sender_phone=item.metadata.get("sender_phone"),
        is_bounce=bool(email and email.is_bounce),
        is_auto_reply=bool(email and email.is_auto_reply),
        is_bulk=bool(email and email.is_bulk),
        spam_verdict=email.spam_verdict if email else None,
        doc_type_hint=item.metadata.get("doc_type"),
        sender_name=(email.from_name if email else None) or item.metadata.get("sender_name"),
        sender_field=email.sender_field if email else None,
        message_id=email.message_id if email else None,
        in_reply_to=email.in_reply_to if email else None,
        references=tuple(email.references) if email else (),
        original_message_id=email.original_message_id if email else None,
        meta_case_ref=item.metadata.get("case_ref") or None,
        meta_account_number=item.metadata.get("account_number") or None,
        meta_customer_id=item.metadata.get("customer_id") or None,
        trusted_metadata=bool(item.metadata.get(TRUSTED_BY)),
        records=sum(1 for p in item.parts if p.kind == "record"),
    )


class FileStage:
    name = "file"
    in_topic = TOPIC_CLASSIFIED
    batched = True  # one transaction for a whole poll: the fast path
    linger_s = 0.0  # set when an index is attached: each batch ends in an index commit

    def __init__(self, *, sessions: sessionmaker[Session], search_index: SearchIndex | None = None,
                 actor: str = "pipeline", work: WorkHooks | None = None) -> None:
        self.sessions = sessions
        self.search_index = search_index
        self.actor = actor
        self.work = work  # case work: new cases start their type, replies reach their case's work
        self.drainer = OutboxDrainer(sessions, search_index) if search_index is not None else None
        if search_index is not None:
            self.linger_s = 0.5  # search sees a filed item at most ~0.5 s later; far fewer index commits

    def prepare(self, messages: Sequence[ClassifiedItem]) -> None:
        pass

    def handle_batch(self, messages: Sequence[ClassifiedItem]) -> list[Output]:
        filings = [filing_for(m) for m in messages]
        with self.sessions() as session, session.begin():
            filings = confine_to_uploaders(session, filings)  # an upload goes only where its uploader may file
            if len(filings) == 1:  # the careful path: handles a concurrent insert of the same item
                f = filings[0]
                with about(item_id=f.item.item_id, case_ref=f.case_ref):
                    item_service.file_item(session, item=f.item, documents=f.documents, outcome=f.outcome,
                                           case_ref=f.case_ref, new_case=f.new_case, doc_type=f.doc_type,
                                           decision=f.decision, actor=self.actor, work=self.work)
            else:
                file_items(session, filings=filings, actor=self.actor, work=self.work)
            record_bounces(session, filings, actor=self.actor)
            session.flush()
            fault_point("mid_file")  # written, not committed
            # What search must take in, committed with the filing (every item of the batch,
            # duplicates too: a redelivered batch then repairs an index write that was lost), and
            # the cases a reply reopened or moved.  The index is written from these rows.
            outbox_ids = search_outbox.enqueue(
                session, item_ids=[f.item.item_id for f in filings],
                case_refs=self.work.status_changed() if self.work is not None else ())
        fault_point("after_file_commit")  # committed; not indexed, offsets not committed
        self.index_after_commit(outbox_ids)
        return []

    def index_after_commit(self, outbox_ids: Sequence[int]) -> None:
        """Index this batch's outbox rows now, then rows left over from earlier failures.  A failure
        leaves the rows to a later batch or the serve loop: the filing is committed either way."""
        if self.drainer is None:
            return
        try:
            self.drainer.drain(ids=outbox_ids)
            self.drainer.drain(min_age_s=LEFTOVER_AGE_S)
        except Exception as exc:
            log.warning("file stage: %d filed item(s) wait in the search outbox (%s: %s); indexed when the "
                        "index is back", len(outbox_ids), type(exc).__name__, exc)


def record_bounces(session: Session, filings: Sequence[Filing], *, actor: str) -> int:
    """Bounces of messages we sent (the matcher linked them by the returned Message-ID): the
    message is marked bounced and its address flagged, in the filing's transaction."""
    found = 0
    for f in filings:
        evidence = f.decision.get("evidence") or {}
        linked = evidence.get("linked") or {}
        if f.outcome == "noise" and (evidence.get("automatic") or {}).get("bounce") and linked.get("message_id"):
            found += record_bounce(session, message_id=str(linked["message_id"]), item_id=f.item.item_id,
                                   actor=actor, reason=f.item.subject or "")
    return found


def filing_for(item: ClassifiedItem) -> Filing:
    """What the store needs to file a classified item."""
    d = item.decision
    email = item.email
    metadata = dict(item.metadata)
    if email and email.message_id:
        metadata["message_id"] = email.message_id
    # an email without a Subject has an empty subject ("(no subject)" where shown), never its file name
    subject = (email.subject or metadata.get("subject") or "") if email else (
        metadata.get("subject") or (item.filename or ""))
    if email and email.date is not None:
        metadata["sent_at"] = email.date.isoformat()  # the mail's own Date, beside received_at
    captured = next((p.fields.get("captured_at") for p in item.parts if p.fields.get("captured_at")), None)
    if not email and captured:
        metadata["captured_at"] = captured  # a scan's capture time, as the scanner recorded it
    new_item = item_service.NewItem(
        item_id=item.item_id, idempotency_key=item.idempotency_key, channel=item.channel,
        received_at=item.received_at, source=item.source, filename=item.filename,
        blob_sha256=item.blob_sha256, content_type=item.content_type, size=item.size, metadata=metadata,
        sender=(email.from_addr if email else None) or metadata.get("sender_email") or metadata.get("sender_phone"),
        subject=subject or None,
    )
    documents = [
        item_service.NewDocument(
            part_index=p.index, kind=p.kind,
            title=p.filename or subject or ("(no subject)" if email else f"part {p.index}"),
            filename=p.filename, content_type=p.content_type, blob_sha256=p.blob_sha256, text=p.text,
            fields=p.fields, error=p.error,
        )
        for p in item.parts
    ]
    new_case = None
    if d.outcome == "new_case":
        p = d.prospect
        prospect = None if p is None or d.customer_id else item_service.NewProspect(
            name=p.name, email=p.email, phone=p.phone, address=p.address, postcode=p.postcode)
        new_case = item_service.NewCase(customer_id=d.customer_id, case_type=d.case_type or d.doc_type,
                                        subject=subject[:200], team=metadata.get("team"), prospect=prospect)
    evidence: dict[str, Any] = {"reason": d.reason, "evidence": d.evidence, "candidates": d.candidates,
                                "customer_id": d.customer_id, "warnings": item.warnings}
    return Filing(item=new_item, documents=documents, outcome=d.outcome, case_ref=d.case_ref,
                  new_case=new_case, doc_type=d.doc_type, decision=evidence)


@dataclass
class PipelineParts:
    bus: Bus
    blobs: BlobStore
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]  # read-only work: no write lock on SQLite
    limits: ExtractLimits
    matcher: Matcher
    retry: RetryPolicy
    batch_size: int = 100
    extract_batch_size: int = 32
    file_batch_size: int = 500
    search_index: SearchIndex | None = None
    work: WorkHooks | None = None  # the file stage's case-work hooks (definitions loaded once per process)
    spam: SpamdCheck | None = None  # the classify stage's content spam check (``CASEWORK_SPAM__SPAMD``)


def record_dead_letter(sessions: sessionmaker[Session], letter: DeadLetter) -> None:
    """Make a dead letter visible in the store, so whoever waits on the item sees why it failed."""
    source = ""
    with contextlib.suppress(ValueError):
        source = RawItem.model_validate_json(letter.envelope).source
    with sessions() as session, session.begin():
        item_service.record_failure(session, item_id=letter.item_id, stage=letter.stage,
                                    error_class=letter.error_class, message=letter.message, source=source,
                                    failed_at=letter.failed_at)


def make_stage(name: str, parts: PipelineParts, *, stop: threading.Event | None = None,
               ) -> ExtractStage | ClassifyStage | FileStage:
    """The stage called ``name``; ``stop`` is its worker's stop flag (the extract stage watches it)."""
    if name == "extract":
        return ExtractStage(blobs=parts.blobs, limits=parts.limits, sessions=parts.read_sessions, stop=stop)
    if name == "classify":
        return ClassifyStage(matcher=parts.matcher, sessions=parts.read_sessions, spam=parts.spam)
    if name == "file":
        return FileStage(sessions=parts.sessions, search_index=parts.search_index, work=parts.work)
    raise ValueError(f"unknown stage {name!r}: choose extract, classify or file")


STAGES = ("extract", "classify", "file")


class PipelineRunner:
    """Every stage as a worker thread in this process: the embedded default's `serve` and `ingest`."""

    def __init__(self, parts: PipelineParts, *, stages: Sequence[str] = STAGES, group_prefix: str = "casework",
                 pause_log_level: int = logging.WARNING) -> None:
        self.stop = threading.Event()
        self.committed = threading.Event()  # set after any stage commits a batch: outcomes may have changed
        self.workers = [
            Worker(bus=parts.bus, handler=make_stage(name, parts, stop=self.stop), group=f"{group_prefix}.{name}",
                   retry=parts.retry, stop=self.stop,
                   batch_size={"extract": parts.extract_batch_size, "file": parts.file_batch_size}.get(
                       name, parts.batch_size),
                   on_dead=lambda letter: record_dead_letter(parts.sessions, letter), guard=translate_errors,
                   pause_log_level=pause_log_level, on_commit=self.committed.set)
            for name in stages
        ]
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self) -> None:
        for worker in self.workers:
            t = threading.Thread(target=self._run, args=(worker,), name=f"stage-{worker.handler.name}", daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, worker: Worker) -> None:
        try:
            worker.run()
        except BaseException as exc:
            log.exception("stage %s stopped on an error", worker.handler.name)
            self.errors.append(exc)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def disk_full(self) -> list[str]:
        """Why each stage that waits for disk space waits (empty while none does)."""
        return [w.paused for w in self.workers if w.paused is not None]

    def states(self) -> dict[str, str]:
        """Each stage: running (with its restarts and last error, if any) or stopped."""
        out = {}
        for w, t in zip(self.workers, self.threads, strict=False):
            state = "running" if t.is_alive() else "stopped"
            if w.paused is not None:
                state = f"paused ({w.paused})"
            if w.restarts:
                state += f" (restarted {w.restarts}x; last: {w.last_error})"
            out[w.handler.name] = state
        return out

    def close(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for w in self.workers:
            w.wake()  # an idle stage waiting in a poll stops now
        for t in self.threads:
            t.join(timeout)
