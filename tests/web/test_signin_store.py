"""The sign-in store on SQLite and PostgreSQL: argon2 passwords, server-side sessions (idle
timeout, sign-out, disabled users, password changes), and login throttling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from casestore import users
from casestore.errors import InvalidInput, NotFound
from casestore.models import utcnow
from casestore.signin import throttle
from casestore.signin.passwords import check_password, set_password
from casestore.signin.sessions import end_session, find_session, start_session, touch

GOOD = "correct horse battery staple"
IDLE = timedelta(minutes=30)


@pytest.fixture
def alice(session: Session) -> None:
    users.add_user(session, name="alice", role="agent", teams=["complaints"])
    users.add_user(session, name="robot", role="integration")


def test_passwords_are_argon2_and_checked(session: Session, alice: None) -> None:
    set_password(session, name="alice", password=GOOD)
    from casestore.signin.models import UserPassword

    stored = session.query(UserPassword).one().password_hash
    assert stored.startswith("$argon2id$") and GOOD not in stored
    assert check_password(session, name="alice", password=GOOD) is not None
    assert check_password(session, name="alice", password=GOOD + "!") is None
    assert check_password(session, name="nobody", password=GOOD) is None
    users.get_user(session, name="alice").disabled = True
    assert check_password(session, name="alice", password=GOOD) is None, "a disabled user cannot sign in"


def test_weak_passwords_and_integration_accounts_are_refused(session: Session, alice: None) -> None:
    with pytest.raises(InvalidInput, match="at least 10"):
        set_password(session, name="alice", password="short")
    with pytest.raises(InvalidInput, match="user name"):
        set_password(session, name="alice", password="  ALICE  ".center(12))
    with pytest.raises(InvalidInput, match="bearer tokens"):
        set_password(session, name="robot", password=GOOD)
    with pytest.raises(NotFound):
        set_password(session, name="nobody", password=GOOD)


def test_sessions_end_when_idle_signed_out_disabled_or_password_changes(session: Session, alice: None) -> None:
    set_password(session, name="alice", password=GOOD)
    user = users.get_user(session, name="alice")
    token, csrf = start_session(session, user=user, client="127.0.0.1", idle=IDLE)
    active = find_session(session, token=token, idle=IDLE)
    assert active is not None and (active.user_name, active.csrf_token, active.touch_due) == ("alice", csrf, False)
    assert find_session(session, token=token + "x", idle=IDLE) is None
    later = utcnow() + IDLE + timedelta(seconds=1)
    assert find_session(session, token=token, idle=IDLE, now=later) is None, "idle too long"
    assert find_session(session, token=token, idle=IDLE, now=utcnow() + timedelta(minutes=5)).touch_due  # type: ignore[union-attr]
    touch(session, session_id=active.session_id)
    user.disabled = True
    session.flush()
    assert find_session(session, token=token, idle=IDLE) is None, "disabling takes effect on the next request"
    user.disabled = False
    session.flush()
    assert find_session(session, token=token, idle=IDLE) is not None
    set_password(session, name="alice", password=GOOD + " again")
    assert find_session(session, token=token, idle=IDLE) is None, "a new password signs every browser out"
    token, _ = start_session(session, user=user, client="127.0.0.1", idle=IDLE)
    assert end_session(session, token=token) and find_session(session, token=token, idle=IDLE) is None


def test_failed_sign_ins_are_throttled_per_name_and_per_address(session: Session) -> None:
    now = utcnow()
    for _ in range(throttle.MAX_PER_NAME):
        throttle.check(session, user_name="Alice", client="10.0.0.1", now=now)
        throttle.record_failure(session, user_name="Alice", client="10.0.0.1", now=now)
    with pytest.raises(throttle.TooManySignIns, match="for this user name") as refused:
        throttle.check(session, user_name="alice ", client="10.0.0.2", now=now)
    assert refused.value.http_status == 429 and 0 < refused.value.retry_after_s <= 15 * 60 + 1
    throttle.check(session, user_name="bob", client="10.0.0.2", now=now)  # others are not affected
    throttle.check(session, user_name="alice", client="10.0.0.2", now=now + throttle.WINDOW + timedelta(seconds=1))
    for n in range(throttle.MAX_PER_CLIENT):
        throttle.record_failure(session, user_name=f"guess{n}", client="10.9.9.9", now=now)
    with pytest.raises(throttle.TooManySignIns, match="from this address"):
        throttle.check(session, user_name="carol", client="10.9.9.9", now=now)
    throttle.clear(session, user_name="ALICE")
    throttle.check(session, user_name="alice", client="10.0.0.1", now=now)
