"""The last-use buffer on the real store: batches, only forward, nothing lost when a flush gives way."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from casestore import users
from casestore.models import ApiToken, utcnow
from casestore.token_use import LastUseBuffer


def test_due_only_after_the_interval_and_with_something_buffered() -> None:
    now = [100.0]
    buffer = LastUseBuffer(interval_s=60, clock=lambda: now[0])
    assert not buffer.due()
    buffer.note(1)
    assert not buffer.due()
    now[0] += 60
    assert buffer.due()


def test_flush_writes_one_batch_and_never_moves_last_use_back(engine: Engine,
                                                              sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        users.add_user(s, name="alice", role="agent")
        ids = [users.issue_token(s, name="alice").row.id for _ in range(3)]
    t0 = utcnow()
    buffer = LastUseBuffer(interval_s=0)
    buffer.note(ids[0], t0)
    buffer.note(ids[0], t0 - timedelta(minutes=5))  # an older use noted later: the newer one stays
    buffer.note(ids[1], t0)
    assert buffer.flush(engine) == 2 and buffer.pending() == {}
    buffer.note(ids[0], t0 - timedelta(hours=1))  # e.g. from a process whose buffer lagged
    assert buffer.flush(engine) == 1
    with sessions() as s:
        stored = {i: at for i, at in s.execute(select(ApiToken.id, ApiToken.last_used_at))}
    assert stored == {ids[0]: t0, ids[1]: t0, ids[2]: None}
