"""A small world for the outbound tests: Jane's complaint with her first email in it, Sam's claim
in another team, and the policy and templates as `casework serve` would build them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from casestore import cases, customers, items
from casestore.outbound.drafts import OutboxPolicy
from casestore.outbound.templates import Templates
from tests.casestore.factories import decision, documents, new_item

JANE_REF, SAM_REF = "CM-2025-000001", "CM-2025-000002"
JANE_EMAIL, JANE_MOBILE = "jane@example.com", "+447700900123"
FIRST_MAIL_ID = "<first-mail-1@mail.example.com>"
POLICY = OutboxPolicy(from_address="Complaints <complaints@cases.example>",
                      team_from={"claims": "Claims <claims@cases.example>"}, signature="Example Ltd",
                      sms_from="+441234567890", rate_limit_per_day=3, letter_return_address="Example Ltd, PO Box 1")
TEMPLATES = Templates()


def build(session: Session) -> None:
    customers.upsert_customer(session, customer_id="C1", name="Jane Doe", email=JANE_EMAIL, phone=JANE_MOBILE,
                              address="1 High Street, Townsville", postcode="AB1 2CD")
    customers.upsert_customer(session, customer_id="C2", name="Sam Poe", email="sam@example.com",
                              phone="+44 20 7946 0000")
    cases.upsert_case(session, ref=JANE_REF, customer_id="C1", case_type="complaint", subject="noise at night",
                      team="complaints")
    cases.upsert_case(session, ref=SAM_REF, customer_id="C2", case_type="claim", subject="water damage",
                      team="claims")
    items.file_item(session, item=new_item("email:first", message_id=FIRST_MAIL_ID, sender=JANE_EMAIL,
                                           received_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC)),
                    documents=documents(2), outcome="attached", case_ref=JANE_REF, new_case=None,
                    doc_type="complaint", decision=decision(), actor="pipeline")
    session.flush()
