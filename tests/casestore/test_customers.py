from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.customers import get_customer, upsert_customer
from casestore.errors import InvalidInput, NotFound
from casestore.models import Customer
from casestore.validation import normalise_phone, normalise_postcode


def test_create_then_update(session: Session) -> None:
    customer, created = upsert_customer(
        session, customer_id=" C-1 ", name="Jane Doe", email=" Jane.Doe@Example.COM ", phone="+44 (0)20 7946 0000",
        address="1 High St", postcode="sw1a 1aa", account_number="ACC-001",
    )
    assert created
    assert customer.customer_id == "C-1"
    assert customer.email == "jane.doe@example.com"
    assert customer.phone == "+44 (0)20 7946 0000"
    assert customer.phone_normalised == "+442079460000"
    assert customer.postcode == "sw1a 1aa" and customer.postcode_normalised == "SW1A1AA"
    created_at = customer.created_at

    again, created = upsert_customer(session, customer_id="C-1", name="Jane Smith", email="jane@example.com")
    assert not created and again.id == customer.id
    assert again.name == "Jane Smith" and again.phone is None  # a row is a full snapshot
    assert again.created_at == created_at and again.updated_at >= created_at
    assert session.scalar(select(func.count()).select_from(Customer)) == 1
    assert get_customer(session, customer_id="C-1").name == "Jane Smith"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customer_id": " ", "name": "X"}, "customer_id is required"),
        ({"customer_id": "C-2", "name": ""}, "name is required"),
        ({"customer_id": "C-2", "name": "X", "email": "not-an-address"}, "not an address"),
        ({"customer_id": "C" * 101, "name": "X"}, "limit is 100"),
    ],
)
def test_invalid_customers(session: Session, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        upsert_customer(session, **kwargs)


def test_unknown_customer(session: Session) -> None:
    with pytest.raises(NotFound, match="import customers"):
        get_customer(session, customer_id="nobody")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+44 20 7946 0000", "+442079460000"),
        ("0044 20 7946 0000", "+442079460000"),
        ("0044 (0)20 7946 0000", "+442079460000"),
        ("+44 (0)20 7946-0000", "+442079460000"),
        ("020 7946 0000", "02079460000"),
        ("(555) 010-9999", "5550109999"),
        ("n/a", None),
        ("", None),
    ],
)
def test_normalise_phone(raw: str, normalised: str | None) -> None:
    assert normalise_phone(raw) == normalised


def test_normalise_postcode() -> None:
    assert normalise_postcode(" ec1a  1bb ") == "EC1A1BB"
    assert normalise_postcode("  ") is None
