"""What an item's metadata says (integration drops, forms, uploads) feeds the decision, and a
customer_id only counts when a configured system, not the sender, wrote it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy.orm import Session

from casestore import cases
from casestore.customers import upsert_customer
from casestore.lookup import StoreLookup
from classify.matcher import Matcher, MatchInput
from ingest.messages import ExtractedItem, Part
from ingest.pipeline import match_input


@pytest.fixture
def lookup(session: Session) -> StoreLookup:
    upsert_customer(session, customer_id="C-1", name="Jane Doe", email="jane@example.com", account_number="ACC-0001")
    upsert_customer(session, customer_id="C-2", name="John Roe", email="john@example.org", account_number="ACC-0002")
    cases.upsert_case(session, ref="CM-2025-004817", customer_id="C-1", case_type="claim", status="open",
                      opened_at=None)
    cases.upsert_case(session, ref="CM-2025-004818", customer_id="C-2", case_type="claim", status="open",
                      opened_at=None)
    return StoreLookup(session)


DROP = MatchInput(channel="file", subject="invoice.xml", text="Invoice 4411 for repair work, total 120.00 GBP",
                  trusted_metadata=True)


def test_a_drop_naming_customer_and_case_attaches_there(lookup: StoreLookup) -> None:
    result = Matcher().decide(replace(DROP, meta_customer_id="C-1", meta_case_ref="CM-2025-004817"), lookup)
    assert (result.outcome, result.case_ref) == ("attached", "CM-2025-004817")
    assert result.evidence["rule"] == "metadata reference + agreement"
    assert result.evidence["agreement"] == {"CM-2025-004817": ["declared_customer"]}


def test_a_drop_naming_only_the_customer_finds_their_one_open_case(lookup: StoreLookup) -> None:
    result = Matcher().decide(replace(DROP, meta_customer_id="C-2"), lookup)
    assert (result.outcome, result.case_ref, result.customer_id) == ("attached", "CM-2025-004818", "C-2")


def test_a_drop_whose_case_belongs_to_another_customer_goes_to_triage(lookup: StoreLookup) -> None:
    result = Matcher().decide(replace(DROP, meta_customer_id="C-2", meta_case_ref="CM-2025-004817"), lookup)
    assert result.outcome == "triage" and result.case_ref is None


def test_metadata_account_number_agrees_like_one_in_the_content(lookup: StoreLookup) -> None:
    form = MatchInput(channel="webform", subject="Claim update", text="Please add the photos to my claim.",
                      sender_email="someone@elsewhere.example", meta_case_ref="CM-2025-004817",
                      meta_account_number="ACC-0001")
    result = Matcher().decide(form, lookup)
    assert (result.outcome, result.case_ref) == ("attached", "CM-2025-004817")
    assert result.evidence["agreement"] == {"CM-2025-004817": ["account_number"]}


def test_a_web_form_cannot_claim_a_customer_by_typing_their_id(lookup: StoreLookup) -> None:
    form = MatchInput(channel="webform", subject="Claim", text="Send me everything on this claim.",
                      sender_email="mallory@evil.example", meta_customer_id="C-1", meta_case_ref="CM-2025-004817")
    result = Matcher().decide(form, lookup)
    assert result.outcome == "triage" and result.case_ref is None
    assert result.evidence["metadata"]["ignored"].startswith("customer_id from a channel")


def test_the_pipeline_trusts_metadata_only_when_casework_marked_it_trusted() -> None:
    def extracted(channel: str, **extra: str) -> ExtractedItem:
        return ExtractedItem(item_id="i", channel=channel, received_at="2026-11-24T10:00:00Z", idempotency_key="k",
                             blob_sha256="0" * 64, size=1,
                             metadata={"customer_id": "C-1", "case_ref": "CM-1", **extra},
                             parts=[Part(index=0, kind="body", text="t")])

    assert match_input(extracted("file", trusted_by="drop:erp")).trusted_metadata
    assert match_input(extracted("api", trusted_by="api:erp-robot")).trusted_metadata
    assert not any(match_input(extracted(c)).trusted_metadata for c in ("file", "api", "call", "email", "webform"))
    assert match_input(extracted("webform")).meta_case_ref == "CM-1"
