"""The matcher's input, output and thresholds (``MatchConfig`` is exposed as CASEWORK_MATCH__*)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classify.case_refs import DEFAULT_LEGACY_PATTERN
from classify.customers import CustomerWeights
from classify.doctype import DEFAULT_TYPE
from classify.entities import DEFAULT_ACCOUNT_PATTERNS, DEFAULT_POSTCODE_PATTERN, EntityConfig
from classify.writer import Writer


@dataclass(frozen=True, slots=True)
class MatchInput:
    channel: str
    subject: str
    text: str
    sender_email: str | None = None
    sender_phone: str | None = None
    is_bounce: bool = False
    is_auto_reply: bool = False
    is_bulk: bool = False
    spam_verdict: str | None = None  # a mail filter upstream called it spam ("X-Spam-Flag: YES")
    doc_type_hint: str | None = None
    sender_name: str | None = None  # display name of From, a form's name field
    sender_field: str | None = None  # email: "sender" or "reply-to" when From was unusable
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    original_message_id: str | None = None  # what a bounce or auto-reply answers
    # What the item's metadata says it is about (integration drops, forms, API uploads):
    meta_case_ref: str | None = None  # checked like a quoted reference: it still needs agreement
    meta_account_number: str | None = None  # counts like an account number in the content
    meta_customer_id: str | None = None  # the customer a trusted system declares (see trusted_metadata)
    trusted_metadata: bool = False  # True for channels whose metadata a configured system wrote, not a sender
    records: int = 0  # data records the item holds (rows of a CSV or spreadsheet export)


@dataclass(frozen=True, slots=True)
class MatchResult:
    outcome: str  # attached | new_case | triage | noise
    case_ref: str | None = None
    customer_id: str | None = None
    doc_type: str = DEFAULT_TYPE
    case_type: str | None = None
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)  # case refs, best first (triage)
    writer: Writer | None = None  # who wrote, for a new case of a person not yet known (a prospect customer)


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Thresholds and patterns of the decision; every field is a setting (CASEWORK_MATCH__<FIELD>)."""

    own_ref_prefix: str = "CW"
    legacy_ref_pattern: str = DEFAULT_LEGACY_PATTERN
    phone_region: str = "GB"
    account_patterns: tuple[str, ...] = DEFAULT_ACCOUNT_PATTERNS
    postcode_pattern: str = DEFAULT_POSTCODE_PATTERN
    day_first: bool = True
    max_ref_edits: int = 2  # 0 disables repairing references against the check character
    min_ref_confidence: float = 0.3  # references read less surely than this are ignored
    identify_threshold: float = 0.75  # customer score to act on without a reference
    candidate_threshold: float = 0.3  # weaker customers are not even triage candidates
    customer_margin: float = 0.15  # the best customer must lead the next by this much
    doc_type_model_min: float = 0.5  # model confidence needed to overrule the rules
    new_case_type: str = DEFAULT_TYPE
    generic_types: tuple[str, ...] = (DEFAULT_TYPE,)  # item types that fit any open case
    attach_to_closed: bool = True  # a closed case quoted by its customer: attach (the work reopens or links) or triage
    max_triage_candidates: int = 5
    weights: CustomerWeights = field(default_factory=CustomerWeights)

    def entity_config(self) -> EntityConfig:
        return EntityConfig(
            own_ref_prefix=self.own_ref_prefix, legacy_ref_pattern=self.legacy_ref_pattern,
            phone_region=self.phone_region, account_patterns=self.account_patterns,
            postcode_pattern=self.postcode_pattern, day_first=self.day_first, max_ref_edits=self.max_ref_edits,
        )
