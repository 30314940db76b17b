"""The dead-letter backlog counted from the store, as /metrics shows it: failed items that are
not filed and not replayed or discarded since their last failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from casestore import cases
from casestore.intake_stats import dead_letter_backlog
from casestore.items import file_item, record_dead_letter_action, record_failure

from .factories import decision, documents, new_item


def test_dead_letter_backlog_counts_what_a_person_still_has_to_handle(session: Session) -> None:
    t0 = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert dead_letter_backlog(session) == 0
    record_failure(session, item_id="a", stage="extract", error_class="BadInput", message="x", failed_at=t0)
    record_failure(session, item_id="a", stage="extract", error_class="BadInput", message="x",
                   failed_at=t0 + timedelta(minutes=1))
    record_failure(session, item_id="b", stage="classify", error_class="BadInput", message="x", failed_at=t0)
    record_failure(session, item_id=None, stage="extract", error_class="DecodeError", message="x", failed_at=t0)
    filed = new_item()
    record_failure(session, item_id=filed.item_id, stage="file", error_class="Unavailable", message="x", failed_at=t0)
    case = cases.open_case(session, customer_id=None, case_type="complaint", subject="s", actor="t", reason="r")
    file_item(session, item=filed, documents=documents(1), outcome="attached", case_ref=case.ref, new_case=None,
              doc_type="letter", decision=decision(), actor="pipeline")
    assert dead_letter_backlog(session) == 2, "a and b; the filed item and the undecodable record are not waiting"

    # discarded up to the letter that failed last (to the microsecond): a leaves the backlog
    record_dead_letter_action(session, key="a", stage="extract", action="dlq.discarded",
                              up_to=t0 + timedelta(minutes=1), actor="ops", reason="junk")
    # replayed up to an older letter than b's newest failure: b stays
    record_dead_letter_action(session, key="b", stage="classify", action="dlq.replayed",
                              up_to=t0 - timedelta(seconds=1), actor="ops")
    assert dead_letter_backlog(session) == 1
    record_failure(session, item_id="a", stage="extract", error_class="BadInput", message="again",
                   failed_at=t0 + timedelta(minutes=5))
    assert dead_letter_backlog(session) == 2, "a failed again after the discard"
