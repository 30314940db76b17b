"""Issue 11.1: a quoted reference agrees when the text carries the case customer's own details,
whatever the layout, the way a person checks a letter against the file (classify.agreement)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from casestore import cases
from casestore.customers import upsert_customer
from casestore.db import make_engine, session_factory, upgrade
from casestore.lookup import CustomerInfo, StoreLookup
from classify.agreement import record_agreement
from classify.matcher import Matcher, MatchInput

from .forms import HELD_OUT, TUNED, generate_forms
from .mailroom import make_people, rates, run_day, seed_store

GREEN = CustomerInfo(customer_id="C-7", name="George Green", email="g.green@mail.example", phone="07911 123456",
                     postcode="EX18 5TG", account_number="22142500", address="14 Mill Road, Exeter")


@pytest.mark.parametrize(("text", "signal"), [
    ("Account: 22142500", "account_number"),
    ("Acct no.\n2214 2500", "account_number"),
    ("Policy 22-14-25-00", "account_number"),
    ("Customer number 22l425OO", "account_number"),  # OCR look-alikes
    ("Policy holder\nGeorge Green\nPost code: ex185tg", "name_postcode"),
    ("G. Green, 14 Mill Rd, Exeter", "name_address"),
    ("Dear Mr G Green,", "full_name"),
    ("GREEN, George", "full_name"),
    ("Geroge Green", "full_name"),  # one OCR edit in a first name of five letters or more
    ("Contact: G.GREEN@mail.example", "content_email"),
    ("Tel +44 (0)7911 123 456", "content_phone"),
])
def test_the_customers_own_details_agree_in_any_layout(text: str, signal: str) -> None:
    assert signal in record_agreement(GREEN, text)


# Text as pdfium reads it from forms Chromium printed (benchmarks/unseen_forms.py): values wrapped in
# narrow table cells, and OCR-ish look-alikes typed into the values.
@pytest.mark.parametrize(("text", "signal"), [
    ("Billing account 2214\n2500\nFurther to our call", "account_number"),
    ("Contract\nnumber\n22142-\n500", "account_number"),
    ("Applicant George\nGreen\nPost Code EX18\n5TG", "name_postcode"),
    ("Applicant George\nGreen\nPhone (day)", "full_name"),
    ("Contact number\n07911\n123456", "content_phone"),
    ("Phone (day): 07911 l23456", "content_phone"),  # l for 1
    ("Policyholder: GREEN, Ge0rge\nPostal code: EXl8 5TG", "full_name"),  # a digit for a letter is read back
    ("Applicant: Ge0rge Gr8en\nPostal code: EXl8 5TG", "name_postcode"),
    ("Account holder GEORGE\nGREEN\nStreet address 14 Mill\nRoad", "name_address"),
])
def test_values_wrapped_or_misread_still_agree(text: str, signal: str) -> None:
    assert signal in record_agreement(GREEN, text)


def test_a_surname_read_through_a_leading_ocr_digit() -> None:
    oliver = CustomerInfo(customer_id="C-9", name="Lynne Oliver", email=None, phone=None, postcode="NR9 7DL",
                          account_number=None)
    assert "full_name" in record_agreement(oliver, "File ref: CM-2024-300890\nApplicant: Lynne 0liver")


def test_the_first_name_is_not_taken_for_a_surname_one_letter_longer() -> None:
    # found by benchmarks/unseen_forms.py seed 13: "Robert Cole" beside Robert Roberts's postcode
    roberts = CustomerInfo(customer_id="C-8", name="Robert Roberts", email=None, phone=None, postcode="NR9Y 7DL",
                           account_number=None)
    assert record_agreement(roberts, "File ref CM-2024-301281 Full name Robert Cole\nPost Code NR9Y 7DL") == []
    assert "name_postcode" in record_agreement(roberts, "Full name Robert Roberts\nPost Code NR9Y 7DL")
    assert "name_postcode" in record_agreement(roberts, "Full name R. Robrets\nPost Code NR9Y 7DL")


def test_a_first_name_ending_one_line_is_not_joined_to_a_surname_that_goes_on() -> None:
    assert "full_name" not in record_agreement(GREEN, "Dear George\nGreen Lane is closed again.")
    assert "full_name" not in record_agreement(GREEN, "George\nand\nGreen")  # only the line right before


@pytest.mark.parametrize("text", [
    "Hello, I ask about the case of my neighbour George.",  # first name alone
    "Postcode: EX18 5TG",  # postcode alone
    "Dear Mr Green,",  # surname with a title only
    "Dear George,\nGreen Lane is closed.",  # first name and surname in different places
    "Account: 22142501",  # one digit differs
    "Ref 122142500",  # inside a longer number
    "Greenwood, George",
    "Tel 07911 123457",
])
def test_near_misses_do_not_agree(text: str) -> None:
    assert record_agreement(GREEN, text) == []


def test_someone_else_we_know_needs_the_customers_own_papers() -> None:
    text = "George Green, g.green@mail.example, Account 22142500"
    assert record_agreement(GREEN, text, own_only=True) == ["account_number"]


@pytest.fixture
def green_case(session: Session) -> StoreLookup:
    upsert_customer(session, customer_id="C-7", name="George Green", email="g.green@mail.example",
                    phone="07911 123456", postcode="EX18 5TG", account_number="22142500",
                    address="14 Mill Road, Exeter")
    upsert_customer(session, customer_id="C-8", name="Ruth Black", email="ruth@mail.example",
                    account_number="33100200")
    cases.upsert_case(session, ref="CM-2025-004817", customer_id="C-7", case_type="claim", status="open",
                      opened_at=None)
    return StoreLookup(session)


def test_a_labelled_form_beside_a_known_reference_attaches(green_case: StoreLookup) -> None:
    form = MatchInput(channel="file", subject="form.pdf",
                      text="Customer: George Green\nAccount: 22142500\nPostcode: EX18 5TG\nOur ref: CM-2025-004817")
    result = Matcher().decide(form, green_case)
    assert (result.outcome, result.case_ref, result.customer_id) == ("attached", "CM-2025-004817", "C-7")


def test_details_the_entity_finders_miss_are_read_from_the_case_customers_record(green_case: StoreLookup) -> None:
    slip = MatchInput(channel="file", subject="slip.pdf",
                      text="Policy holder ...... G. Green\nAcct no.\n2214 25OO\nOur ref ...... CM-2025-004817")
    result = Matcher().decide(slip, green_case)
    assert (result.outcome, result.case_ref) == ("attached", "CM-2025-004817"), result.evidence
    assert result.evidence["record_check"]["CM-2025-004817"] == ["account_number", "full_name"]


def test_a_known_sender_quoting_someone_elses_case_with_their_name_goes_to_triage(green_case: StoreLookup) -> None:
    note = MatchInput(channel="email", subject="CM-2025-004817", sender_email="ruth@mail.example",
                      text="What is happening with George Green's claim?")
    assert Matcher().decide(note, green_case).outcome == "triage"


@pytest.fixture(scope="module")
def forms_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Forms and letters in layouts not looked at while building the check (HELD_OUT)."""
    tmp = tmp_path_factory.mktemp("forms")
    engine = make_engine(f"sqlite:///{tmp / 'casework.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    rng = random.Random(1111)
    people = make_people(rng, 60)
    with sessions() as session, session.begin():
        seed_store(session, people, rng)
    items = generate_forms(people, rng, n=30, layouts=HELD_OUT, negatives=12)
    yield rates(run_day(items, sessions, Matcher(), Path(tmp) / "blobs"))
    engine.dispose()


def test_held_out_layouts_are_not_the_tuned_ones() -> None:
    assert not set(HELD_OUT) & set(TUNED)


def test_forms_in_held_out_layouts_attach_to_their_case(forms_day: dict[str, Any]) -> None:
    assert forms_day["attach_recall"] >= 0.95, forms_day["wrong"]


def test_forms_quoting_someone_elses_case_never_attach(forms_day: dict[str, Any]) -> None:
    assert forms_day["attach_precision"] == 1.0, forms_day["wrong"]
    assert forms_day["filed_in_other_customers_case"] == 0, forms_day["wrong"]
    assert forms_day["other_outcomes_right"] == 1.0, forms_day["wrong"]
