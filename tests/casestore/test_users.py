from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import users
from casestore.errors import Conflict, InvalidInput, NotFound
from casestore.models import ApiToken, utcnow


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


def test_authenticating_is_a_pure_read(session: Session) -> None:
    """No write per request: checking a token changes nothing (last use is buffered elsewhere)."""
    users.add_user(session, name="alice", role="agent")
    token = users.create_token(session, name="alice")
    session.flush()
    assert users.authenticate(session, token=token) is not None
    row = session.scalars(select(ApiToken)).one()
    assert row.last_used_at is None and not session.dirty and not session.new


def test_token_lifecycle_label_expiry_revocation(session: Session) -> None:
    users.add_user(session, name="alice", role="agent")
    users.add_user(session, name="bob", role="agent")
    now = utcnow()
    short = users.issue_token(session, name="alice", expires_in=users.parse_duration("90d"), label="laptop")
    forever = users.issue_token(session, name="alice")
    other = users.issue_token(session, name="bob", label="ci")
    assert short.row.label == "laptop" and short.row.expires_at is not None
    assert timedelta(days=90) <= short.row.expires_at - now < timedelta(days=90, minutes=1)
    assert forever.row.expires_at is None
    assert [t.id for t in users.list_tokens(session)] == [short.row.id, forever.row.id, other.row.id]
    assert [t.id for t in users.list_tokens(session, name="bob")] == [other.row.id]

    later = now + timedelta(days=91)
    check = users.check_token(session, token=short.token, now=later)
    assert (check.user, check.problem, check.token_id) == (None, "expired", short.row.id)
    assert users.check_token(session, token=forever.token, now=later).problem is None
    assert users.check_token(session, token="cw_nothing").problem == "unknown"

    revoked = users.revoke_token(session, token_id=forever.row.id)
    assert revoked.revoked and revoked.revoked_at is not None
    assert users.revoke_token(session, token_id=forever.row.id).revoked_at == revoked.revoked_at, "idempotent"
    assert users.check_token(session, token=forever.token).problem == "revoked"
    assert users.check_token(session, token=other.token).problem is None, "only that one token"
    with pytest.raises(NotFound, match="token list"):
        users.revoke_token(session, token_id=999_999)


def test_disabled_users_are_refused_until_enabled(session: Session) -> None:
    users.add_user(session, name="alice", role="agent")
    token = users.create_token(session, name="alice")
    users.set_disabled(session, name="alice", disabled=True)
    assert users.check_token(session, token=token).problem == "disabled"
    assert [u.disabled for u in users.list_users(session)] == [True]
    users.set_disabled(session, name="alice", disabled=False)
    assert users.check_token(session, token=token).user is not None


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "-3d", "1y", "99999w"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"90d|at most"):
        users.parse_duration(text)


def test_good_durations() -> None:
    assert [users.parse_duration(t) for t in ("30m", "12h", "90d", "2W")] == [
        timedelta(minutes=30), timedelta(hours=12), timedelta(days=90), timedelta(weeks=2)]
