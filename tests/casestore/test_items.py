from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore import cases, items
from casestore.errors import InvalidInput, NotFound
from casestore.items import NewCase, file_item, item_view, outcomes, record_failure
from casestore.models import AuditEvent, Case, Document, Item

from .factories import decision, documents, new_item


def _count(session: Session, model: type, *where: object) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def _case(session: Session) -> Case:
    return cases.open_case(session, customer_id=None, case_type="complaint", subject="s", actor="t", reason="r")


def test_attach_files_documents_audit_and_bumps_the_case(session: Session) -> None:
    case = _case(session)
    before = case.updated_at
    item = new_item(message_id="<abc@example.com>")
    filed = file_item(session, item=item, documents=documents(3), outcome="attached", case_ref=case.ref,
                      new_case=None, doc_type="letter", decision=decision(), actor="pipeline")
    assert filed == items.FiledItem(item.item_id, "attached", case.ref, "letter", duplicate=False)
    assert _count(session, Document, Document.case_id == case.id) == 3
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "item.filed")).one()
    assert event.case_id == case.id and event.item_id == item.item_id
    assert event.reason == "case reference in subject" and event.details == decision()
    assert case.updated_at > before
    row = session.get(Item, item.item_id)
    assert row is not None and row.meta == {"message_id": "<abc@example.com>"} and row.case_id == case.id


def test_same_item_twice_is_a_duplicate_and_writes_nothing(session: Session) -> None:
    case = _case(session)
    item = new_item()
    args = {"documents": documents(2), "outcome": "attached", "case_ref": case.ref, "new_case": None,
            "doc_type": "letter", "decision": decision(), "actor": "pipeline"}
    first = file_item(session, item=item, **args)  # type: ignore[arg-type]
    second = file_item(session, item=item, **args)  # type: ignore[arg-type]
    # same idempotency key under another item id, and a different decision: still the first outcome
    third = file_item(session, item=replace(item, item_id="other-id"), documents=documents(5), outcome="triage",
                      case_ref=None, new_case=None, doc_type="x", decision=decision("other"), actor="pipeline")
    assert not first.duplicate and second.duplicate and third.duplicate
    assert second == replace(first, duplicate=True) == third
    assert _count(session, Item) == 1
    assert _count(session, Document) == 2
    assert _count(session, AuditEvent, AuditEvent.action == "item.filed") == 1


def test_new_case_opens_a_case_and_files_there(session: Session) -> None:
    filed = file_item(session, item=new_item(), documents=documents(1), outcome="new_case", case_ref=None,
                      new_case=NewCase(customer_id=None, case_type="complaint", subject="Boiler"),
                      doc_type="letter", decision=decision("no case found"), actor="pipeline")
    assert filed.case_ref is not None
    case = cases.get_case(session, ref=filed.case_ref)
    assert case.customer is None and case.subject == "Boiler"
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)
                              .order_by(AuditEvent.id)).all()
    assert actions == ["case.opened", "item.filed"]


@pytest.mark.parametrize("outcome", ["triage", "noise"])
def test_triage_and_noise_have_no_case(session: Session, outcome: str) -> None:
    filed = file_item(session, item=new_item(), documents=documents(2), outcome=outcome, case_ref=None,
                      new_case=None, doc_type="unknown", decision=decision("no match"), actor="pipeline")
    assert filed.case_ref is None and filed.outcome == outcome
    assert _count(session, Document, Document.case_id.is_(None)) == 2
    assert session.scalars(select(AuditEvent.case_id)).all() == [None]


def test_attach_to_unknown_ref_is_not_found_and_writes_nothing(session: Session) -> None:
    with pytest.raises(NotFound):
        file_item(session, item=new_item(), documents=documents(1), outcome="attached", case_ref="CW-2025-000001-A",
                  new_case=None, doc_type="letter", decision=decision(), actor="pipeline")
    assert _count(session, Item) == 0 and _count(session, Document) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "lost"}, "not one of"),
        ({"outcome": "attached", "case_ref": None}, "needs the case_ref"),
        ({"outcome": "new_case", "new_case": None}, "needs new_case"),
        ({"outcome": "triage", "documents": [*documents(1), *documents(1)]}, "part_index values repeat"),
    ],
)
def test_inconsistent_arguments(session: Session, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"item": new_item(), "documents": documents(1), "case_ref": None, "new_case": None,
                               "doc_type": "x", "decision": decision(), "actor": "p", **kwargs}
    with pytest.raises(InvalidInput, match=message):
        file_item(session, **args)  # type: ignore[arg-type]


def test_item_view_has_documents_text_and_failures(session: Session) -> None:
    case = _case(session)
    item = new_item()
    record_failure(session, item_id=item.item_id, stage="extract", error_class="Unavailable", message="ocr down")
    file_item(session, item=item, documents=documents(2), outcome="attached", case_ref=case.ref, new_case=None,
              doc_type="letter", decision=decision(), actor="pipeline")
    view = item_view(session, item_id=item.item_id)
    assert view["outcome"] == "attached" and view["case_ref"] == case.ref and view["doc_type"] == "letter"
    assert [d["part_index"] for d in view["documents"]] == [0, 1]
    assert view["documents"][1]["fields"] == {"page_count": 1}
    assert view["text"] == "part 0 text about the boiler\n\npart 1 text about the boiler"
    assert [f["stage"] for f in view["failures"]] == ["extract"]
    assert view["decision"] == decision()


def test_item_view_of_a_failed_and_of_an_unknown_item(session: Session) -> None:
    record_failure(session, item_id="failed-1", stage="extract", error_class="BadInput", message="encrypted PDF",
                   source="/in/x.pdf")
    view = item_view(session, item_id="failed-1")
    assert view["outcome"] == "failed" and view["documents"] == [] and view["source"] == "/in/x.pdf"
    assert view["failures"][0]["message"] == "encrypted PDF"
    with pytest.raises(NotFound, match="still be in the pipeline"):
        item_view(session, item_id="nobody")


def test_outcomes_for_a_batch(session: Session) -> None:
    case = _case(session)
    filed = [new_item() for _ in range(3)]
    for it in filed:
        file_item(session, item=it, documents=documents(1), outcome="attached", case_ref=case.ref, new_case=None,
                  doc_type="letter", decision=decision(), actor="pipeline")
    record_failure(session, item_id="f-1", stage="extract", error_class="BadInput", message="first")
    record_failure(session, item_id="f-1", stage="extract", error_class="BadInput", message="second")
    record_failure(session, item_id=filed[0].item_id, stage="file", error_class="Unavailable", message="retried")
    record_failure(session, item_id=None, stage="extract", error_class="DecodeError", message="undecodable")
    unknown = [f"pending-{i}" for i in range(1200)]  # more than two IN chunks
    result = outcomes(session, item_ids=[*unknown, filed[0].item_id, filed[1].item_id, filed[2].item_id, "f-1"])
    assert set(result) == {filed[0].item_id, filed[1].item_id, filed[2].item_id, "f-1"}
    assert result[filed[0].item_id] == {"outcome": "attached", "case_ref": case.ref, "doc_type": "letter",
                                        "error": None}
    failed_at = result["f-1"].pop("failed_at")
    assert result["f-1"].pop("failure_id") == items.last_failure_id(session) - 2, "the second of four failures"
    assert result["f-1"] == {"outcome": "failed", "case_ref": None, "doc_type": None, "error": "BadInput: second"}
    assert failed_at.tzinfo is not None and failed_at <= datetime.now(UTC), "when the last failure was recorded"
    assert outcomes(session, item_ids=[]) == {}


def test_nul_characters_are_dropped_so_postgres_accepts_the_text(session: Session) -> None:
    doc = replace(documents(1)[0], text="pdf\x00text", fields={"k\x00": ["v\x00"]})
    item = new_item(subject="sub\x00ject")
    file_item(session, item=item, documents=[doc], outcome="triage", case_ref=None, new_case=None,
              doc_type="x", decision=decision("why\x00"), actor="p")
    view = item_view(session, item_id=item.item_id)
    assert view["text"] == "pdftext" and view["documents"][0]["fields"] == {"k": ["v"]}
    assert view["subject"] == "subject" and view["decision"]["reason"] == "why"
