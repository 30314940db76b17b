"""Issue 11.2 and 11.3 through the real classify and file stages on a real store: a new person who
writes twice is one customer with one case, and a file with nobody to answer opens no case.

Items are real bytes (emails, PDFs, a README, a CSV export) read by the real extractor."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from casestore import items as item_service
from casestore.customers import PROSPECT_PREFIX, upsert_customer
from casestore.work.folder import case_folder
from classify.matcher import Matcher
from ingest.messages import ClassifiedItem
from ingest.pipeline import ClassifyStage, FileStage
from tests.classify.forms import render_pdf
from tests.classify.mailroom import Expected, MailItem, extract_item
from tests.classify.mailroom_render import email_bytes


def _mail(name: str, *, sender: str, subject: str, body: str, bulk: bool = False) -> MailItem:
    data, _ = email_bytes(sender=sender, subject=subject, body=body)
    if bulk:
        data = b"List-Id: <offers.shop.example>\r\nList-Unsubscribe: <mailto:leave@shop.example>\r\n" + data
    return MailItem(name, "test", "email", data, f"{name}.eml", "message/rfc822", Expected("?"))


def _file(name: str, data: bytes, content_type: str, channel: str = "file") -> MailItem:
    return MailItem(name, "test", channel, data, name, content_type, Expected("?"))


def _run(sessions: sessionmaker[Session], batch: Sequence[MailItem], tmp: Path) -> list[ClassifiedItem]:
    """Classify the items as one batch (one store snapshot), then file them as one batch."""
    extracted = [extract_item(i, tmp / "blobs") for i in batch]
    classified = [msg for _, _, msg in ClassifyStage(matcher=Matcher(), sessions=sessions).handle_batch(extracted)]
    FileStage(sessions=sessions).handle_batch(classified)  # type: ignore[arg-type]
    return classified  # type: ignore[return-value]


def _filed(sessions: sessionmaker[Session], item: ClassifiedItem) -> dict[str, object]:
    with sessions() as session:
        return item_service.outcomes(session, item_ids=[item.item_id])[item.item_id]


COMPLAINT = ("Dear Sir or Madam,\n\nI want to make a formal complaint about the engineer who did not come on "
             "Tuesday. It was unacceptable.\n\nYours faithfully,\nNadia Osei\n07700 900123")
FOLLOW_UP = "Hello,\n\nIs there any news on my case? I am still waiting to hear back.\n\nNadia"


def test_a_new_persons_follow_up_finds_their_first_case(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first = _run(sessions, [_mail("n1", sender="Nadia Osei <nadia.osei@web.example>", subject="Complaint",
                                  body=COMPLAINT)], tmp_path)[0]
    assert first.decision.outcome == "new_case"
    opened = _filed(sessions, first)["case_ref"]
    again = _run(sessions, [_mail("n2", sender="nadia.osei@web.example", subject="Any news?", body=FOLLOW_UP)],
                 tmp_path)[0]
    assert (again.decision.outcome, again.decision.case_ref) == ("attached", opened), again.decision.reason
    with sessions() as session:
        folder = case_folder(session, ref=str(opened))
    assert folder.customer is not None
    assert folder.customer.customer_id.startswith(PROSPECT_PREFIX)
    assert (folder.customer.name, folder.customer.email) == ("Nadia Osei", "nadia.osei@web.example")
    assert folder.customer.phone == "+447700900123", "the number in the signature is theirs too"
    assert len(folder.documents) == 2


def test_two_items_of_a_new_person_in_one_batch_make_one_case(sessions: sessionmaker[Session],
                                                              tmp_path: Path) -> None:
    batch = [_mail("b1", sender="Tom Yardley <tom@yardley.example>", subject="Complaint", body=COMPLAINT),
             _mail("b2", sender="tom@yardley.example", subject="My complaint",
                   body="Further to my complaint this morning: the engineer has still not come. Unacceptable.")]
    classified = _run(sessions, batch, tmp_path)
    assert [c.decision.outcome for c in classified] == ["new_case", "new_case"]  # neither knew the other
    filed = [_filed(sessions, c) for c in classified]
    assert [f["outcome"] for f in filed] == ["new_case", "attached"]
    assert filed[0]["case_ref"] == filed[1]["case_ref"]


def test_a_letter_from_a_new_person_keeps_their_address_and_their_next_letter_matches(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    rng = random.Random(5)
    letter = [("line", "Ruth Prendergast"), ("line", "27 Kings Road"), ("line", "Hull HU5 3QP"), ("line", ""),
              ("line", "Dear Sir or Madam,"), ("line", "I would like to make a claim for the storm damage to my roof."),
              ("line", "Yours faithfully,"), ("line", "Ruth Prendergast")]
    first = _run(sessions, [_file("l1.pdf", render_pdf(letter, rng), "application/pdf")], tmp_path)[0]
    assert first.decision.outcome == "new_case"
    assert first.decision.prospect is not None and first.decision.prospect.postcode == "HU5 3QP"
    assert first.decision.prospect.address == "27 Kings Road, Hull"
    opened = _filed(sessions, first)["case_ref"]
    second = [("line", "R Prendergast, 27 Kings Road, Hull HU5 3QP"), ("line", "Dear Sir,"),
              ("line", "Here are the roofer's photos for my claim."), ("line", "Regards,"),
              ("line", "Ruth Prendergast")]
    again = _run(sessions, [_file("l2.pdf", render_pdf(second, rng), "application/pdf")], tmp_path)[0]
    assert (again.decision.outcome, again.decision.case_ref) == ("attached", opened), again.decision.reason


def test_a_known_customers_address_is_not_made_a_prospect(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions() as session, session.begin():
        upsert_customer(session, customer_id="C-1", name="Ann Lovell", email="ann@lovell.example")
    item = _run(sessions, [_mail("k1", sender="ann@lovell.example", subject="Complaint", body=COMPLAINT)],
                tmp_path)[0]
    assert (item.decision.outcome, item.decision.customer_id, item.decision.prospect) == ("new_case", "C-1", None)


README = b"""# csvkit examples

This folder holds example files for the test suite. Run `make test` to use them.
Questions go to the issue tracker, not by email. Copyright 2016 the authors; MIT licence.
"""
CSV_EXPORT = (b"date,product,issue,state,zip\n2023-08-25,Credit card,Billing dispute,FL,33009\n"
              b"2023-08-26,Mortgage,Late fee,TX,75001\n2023-08-27,Checking,Overdraft,CA,94110\n")


@pytest.mark.parametrize(("name", "data", "ctype", "rule"), [
    ("README.md", README, "text/plain", "no one to answer"),
    ("export.csv", CSV_EXPORT, "text/csv", "data export, no one to answer"),
    ("contact.txt", b"For support write to help@vendor.example or call 0113 496 0000.\n", "text/plain",
     "no one to answer"),  # contacts, but nobody who wrote
])
def test_a_file_with_nobody_to_answer_opens_no_case(sessions: sessionmaker[Session], tmp_path: Path, name: str,
                                                   data: bytes, ctype: str, rule: str) -> None:
    item = _run(sessions, [_file(name, data, ctype)], tmp_path)[0]
    assert (item.decision.outcome, item.decision.evidence["rule"]) == ("triage", rule), item.decision.reason
    assert "nobody to answer" in item.decision.reason
    assert _filed(sessions, item)["case_ref"] is None


def test_list_mail_from_a_stranger_is_noise(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    item = _run(sessions, [_mail("s1", sender="Shop <offers@shop.example>", subject="50% off this weekend",
                                 body="Our biggest sale of the year starts now.", bulk=True)], tmp_path)[0]
    assert item.decision.outcome == "noise"
    assert _filed(sessions, item)["case_ref"] is None


def test_a_mail_from_a_no_reply_address_opens_no_case(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    item = _run(sessions, [_mail("r1", sender="no-reply@portal.example", subject="Your export is ready",
                                 body="The report you asked for is attached.")], tmp_path)[0]
    assert item.decision.outcome == "triage" and item.decision.evidence["rule"] == "no one to answer"
