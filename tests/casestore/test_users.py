from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import users
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import ApiToken, Case


def test_add_user(session: Session) -> None:
    user = users.add_user(session, name=" alice ", role="Agent", teams=["repairs", "billing", "repairs"])
    assert (user.name, user.role, user.teams, user.disabled) == ("alice", "agent", ["repairs", "billing"], False)
    with pytest.raises(Conflict, match="exists already"):
        users.add_user(session, name="alice", role="admin")
    with pytest.raises(InvalidInput, match="agent, supervisor, admin, integration"):
        users.add_user(session, name="bob", role="root")
    with pytest.raises(InvalidInput, match="list of team names"):
        users.add_user(session, name="bob", role="agent", teams="repairs")


def test_token_is_stored_hashed_and_authenticates(session: Session) -> None:
    alice = users.add_user(session, name="alice", role="agent")
    token = users.create_token(session, name="alice")
    assert token.startswith("cw_") and len(token) > 40
    stored = session.scalars(select(ApiToken.token_hash)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()] and token not in stored
    assert users.authenticate(session, token=token) is alice
    assert users.authenticate(session, token=token + "x") is None
    assert users.authenticate(session, token="") is None
    with pytest.raises(NotFound):
        users.create_token(session, name="nobody")


def test_revoked_tokens_and_disabled_users_fail(session: Session) -> None:
    alice = users.add_user(session, name="alice", role="agent")
    first, second = users.create_token(session, name="alice"), users.create_token(session, name="alice")
    assert users.revoke_tokens(session, name="alice") == 2
    session.expire_all()
    assert users.authenticate(session, token=first) is None and users.authenticate(session, token=second) is None
    third = users.create_token(session, name="alice")
    assert users.authenticate(session, token=third) is not None
    alice.disabled = True
    session.flush()
    assert users.authenticate(session, token=third) is None
    with pytest.raises(InvalidInput, match="disabled"):
        users.create_token(session, name="alice")


def test_last_used_at_is_written_at_most_once_a_minute(session: Session) -> None:
    users.add_user(session, name="alice", role="agent")
    token = users.create_token(session, name="alice")
    users.authenticate(session, token=token)
    row = session.scalars(select(ApiToken)).one()
    first = row.last_used_at
    assert first is not None
    users.authenticate(session, token=token)
    assert row.last_used_at == first
    row.last_used_at = first - timedelta(minutes=2)
    session.flush()
    users.authenticate(session, token=token)
    assert row.last_used_at is not None and row.last_used_at > first - timedelta(minutes=2)


def test_can_see_case(session: Session) -> None:
    agent = users.add_user(session, name="agent", role="agent", teams=["repairs"])
    supervisor = users.add_user(session, name="sup", role="supervisor")
    admin = users.add_user(session, name="admin", role="admin")
    shared = Case(ref="A", case_type="x", team=None, restricted=False)
    restricted = Case(ref="B", case_type="x", team=None, restricted=True)
    repairs = Case(ref="C", case_type="x", team="repairs", restricted=True)
    billing = Case(ref="D", case_type="x", team="billing", restricted=False)
    assert [users.can_see_case(agent, c) for c in (shared, restricted, repairs, billing)] == [
        True, False, True, False]
    assert all(users.can_see_case(u, c) for u in (supervisor, admin) for c in (shared, restricted, billing))
