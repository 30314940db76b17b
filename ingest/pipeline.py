"""The classify and file stages, and everything the three pipeline stages need (``PipelineParts``).

The extract stage and the runner that drives the stages in-process live in ``ingest.runner`` (they
need none of the matcher, filing or search imported here) and are re-exported from here.
Each stage is idempotent on ``item_id``:

* extract skips items already filed (a re-ingested file is a duplicate, not new work);
* classify only reads the store;
* file writes the item, its documents and the audit event in one transaction, and
  ``casestore.items.file_item`` returns the existing outcome when the item is already there.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from casestore import items as item_service
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
from ingest.faults import fault_point
from ingest.intake import TRUSTED_BY
from ingest.log_context import about
from ingest.messages import (
    TOPIC_CLASSIFIED,
    TOPIC_EXTRACTED,
    ClassifiedItem,
    Decision,
    ExtractedItem,
    Prospect,
)
from ingest.runner import STAGES, ExtractStage, PipelineRunner, StageParts, make_stage, record_dead_letter
from ingest.worker import Output

if TYPE_CHECKING:
    from ingest.spam import SpamdCheck  # aiospamc is imported only when spamd is configured

log = logging.getLogger(__name__)

MAX_CLASSIFY_CHARS = 200_000
LEFTOVER_AGE_S = 5.0  # outbox rows older than this are no longer another stage's batch in flight


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
                 actor: str = "pipeline", work: WorkHooks | None = None, index_every_s: float = 0.0) -> None:
        """``index_every_s`` > 0 (`casework ingest`): a batch's outbox rows are indexed with those of
        the batches after it, at most once in that many seconds, and what is left by ``finish``;
        0 (`casework serve`, the workers): after each batch's commit."""
        self.sessions = sessions
        self.search_index = search_index
        self.actor = actor
        self.work = work  # case work: new cases start their type, replies reach their case's work
        self.drainer = OutboxDrainer(sessions, search_index) if search_index is not None else None
        self.index_every_s = index_every_s
        self._unindexed: list[int] = []  # outbox rows committed, not yet drained (index_every_s > 0)
        self._indexed_at = time.monotonic()
        self._index_lock = threading.Lock()  # the stage's thread and ``finish`` (the runner's close)
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
        if self.index_every_s <= 0:
            self.index_after_commit(outbox_ids)
            return []
        with self._index_lock:
            self._unindexed.extend(outbox_ids)
            if time.monotonic() - self._indexed_at >= self.index_every_s:
                self._index_unindexed()
        return []

    def finish(self) -> None:
        """Index what the batches left for later (``index_every_s``) and the rows left over from
        earlier runs; called by ``PipelineRunner.close`` once the stage has stopped, so `casework
        ingest` returns with every item it filed searchable (unless the index is down: then the rows
        wait in the outbox, as after any failed index write)."""
        if self.drainer is None or self.index_every_s <= 0:
            return
        with self._index_lock:
            self._index_unindexed()

    def _index_unindexed(self) -> None:
        ids, self._unindexed = self._unindexed, []
        self._indexed_at = time.monotonic()
        self.index_after_commit(ids)

    def index_after_commit(self, outbox_ids: Sequence[int]) -> None:
        """Index these outbox rows now, then rows left over from earlier failures.  A failure
        leaves the rows to a later batch or the serve loop: the filing is committed either way."""
        if self.drainer is None:
            return
        try:
            batch = self.drainer.batch  # a drain takes at most one batch of rows
            for start in range(0, len(outbox_ids), batch):
                self.drainer.drain(ids=outbox_ids[start:start + batch])
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


@dataclass(kw_only=True)
class PipelineParts(StageParts):
    """What all three stages need: ``StageParts`` and the later stages' matcher, search and case work."""

    matcher: Matcher
    search_index: SearchIndex | None = None
    work: WorkHooks | None = None  # the file stage's case-work hooks (definitions loaded once per process)
    spam: SpamdCheck | None = None  # the classify stage's content spam check (``CASEWORK_SPAM__SPAMD``)
    index_every_s: float = 0.0  # the file stage's ``index_every_s`` (`casework ingest` sets it)


def make_later_stage(name: str, parts: PipelineParts, *, stop: threading.Event | None = None,
                     ) -> ClassifyStage | FileStage:
    """Classify or file (``ingest.runner.make_stage`` makes any of the three)."""
    if name == "classify":
        return ClassifyStage(matcher=parts.matcher, sessions=parts.read_sessions, spam=parts.spam)
    if name == "file":
        return FileStage(sessions=parts.sessions, search_index=parts.search_index, work=parts.work,
                         index_every_s=parts.index_every_s)
    raise ValueError(f"unknown stage {name!r}: choose extract, classify or file")


__all__ = ["STAGES", "ClassifyStage", "ExtractStage", "FileStage", "PipelineParts", "PipelineRunner",
           "make_later_stage", "make_stage", "match_input", "record_dead_letter"]
