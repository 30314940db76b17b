"""A generated mailroom day through real extraction (tesseract for the scans), the real Matcher
and the real StoreLookup on a SQLite store seeded with casestore services."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from casestore.db import make_engine, session_factory, upgrade
from classify.matcher import Matcher

from .mailroom import generate_day, make_people, rates, run_day, seed_store


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mailroom")
    engine = make_engine(f"sqlite:///{tmp / 'casework.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    rng = random.Random(2026)
    people = make_people(rng, 90)
    with sessions() as session, session.begin():
        seed_store(session, people, rng)
    items = generate_day(people, rng, scans=20)
    outcomes = run_day(items, sessions, Matcher(), Path(tmp) / "blobs")
    yield rates(outcomes)
    engine.dispose()


def test_the_day_has_every_kind_of_item(day: dict[str, Any]) -> None:
    kinds = set(day["by_kind"])
    assert {"ref-subject", "ref-body-new-address", "thread-reply", "known-one-case", "known-new-request",
            "stranger-quotes-ref", "customer-quotes-other-ref", "new-person-complaint", "out-of-office",
            "pdf-form", "scan-clean-ref", "scan-account-only", "scan-new-claim"} <= kinds
    assert any(k.startswith("scan-misread") for k in kinds)
    assert day["items"] >= 130


def test_auto_attach_precision_and_recall(day: dict[str, Any]) -> None:
    assert day["attach_precision"] >= 0.995, day["wrong"]
    assert day["attach_recall"] >= 0.95, day["wrong"]


def test_nothing_filed_in_another_customers_case(day: dict[str, Any]) -> None:
    assert day["filed_in_other_customers_case"] == 0, day["wrong"]


def test_new_case_triage_and_noise_outcomes_right(day: dict[str, Any]) -> None:
    assert day["other_outcomes_right"] >= 0.90, day["wrong"]
