"""Real commits from several sessions and threads: the guarantees the pipeline relies on."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from casestore import cases
from casestore.items import FiledItem, file_item
from casestore.models import AuditEvent, Document, Item
from casestore.refs import is_valid_ref

from .factories import decision, documents, new_item


def _wait_until_blocked(engine: Engine, thread: threading.Thread) -> None:
    """PostgreSQL: until another backend waits on a lock.  SQLite shows no such thing: a pause."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline and thread.is_alive():
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited on the first")


def test_concurrent_filing_of_the_same_item_gives_one_copy(
    engine: Engine, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="casestore.items")
    item = new_item()
    kwargs = {"item": item, "documents": documents(2), "outcome": "triage", "case_ref": None, "new_case": None,
              "doc_type": "letter", "decision": decision(), "actor": "pipeline"}
    results: list[FiledItem] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with sessions() as s:
                results.append(file_item(s, **kwargs))  # type: ignore[arg-type]
                s.commit()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    with sessions() as first:
        mine = file_item(first, **kwargs)  # type: ignore[arg-type]
        thread = threading.Thread(target=second)
        thread.start()
        _wait_until_blocked(engine, thread)
        first.commit()
    thread.join(30)
    assert not errors, errors
    assert not mine.duplicate and results[0].duplicate and results[0].item_id == item.item_id
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 1
        assert s.scalar(select(func.count()).select_from(Document)) == 2
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 1
    if engine.dialect.name == "postgresql":  # the second insert hit the unique key inside its SAVEPOINT
        assert "was filed concurrently" in caplog.text
    else:  # SQLite: BEGIN IMMEDIATE made the second transaction wait, then it saw the item
        assert "already filed" in caplog.text


def test_concurrent_case_opening_allocates_distinct_refs(sessions: sessionmaker[Session]) -> None:
    def open_one(i: int) -> str:
        with sessions() as s:
            case = cases.open_case(s, customer_id=None, case_type="complaint", subject=f"#{i}", actor="t", reason="r")
            time.sleep(0.01)  # hold the allocation a little while others try
            s.commit()
            return case.ref

    with ThreadPoolExecutor(max_workers=4) as pool:
        refs = list(pool.map(open_one, range(12)))
    assert len(set(refs)) == 12 and all(is_valid_ref(r) for r in refs)
    assert sorted(int(r.split("-")[2]) for r in refs) == list(range(1, 13))
