"""`casework user ...` and `casework token ...` as a user runs them (subprocesses, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from casestore import users
from casestore.db import make_engine, session_factory

CASEWORK = [sys.executable, "-m", "api"]


def run(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, f"casework {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _check(env: dict[str, str], token: str) -> Any:
    url = env.get("CASEWORK_DB__URL") or f"sqlite:///{env['CASEWORK_DATA_DIR']}/casework.db"
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return users.check_token(s, token=token).problem
    finally:
        engine.dispose()


def test_token_and_user_lifecycle_from_the_command_line(user_env: dict[str, str], db_url: str) -> None:
    env = user_env
    run(env, "user", "add", "alice", "--role", "agent", "--team", "complaints")
    made = run(env, "token", "create", "alice", "--expires-in", "90d", "--label", "laptop")
    token = made.stdout.strip()
    assert token.startswith("cw_") and "\n" not in token, "stdout is the token alone"
    assert "expires" in made.stderr
    second = run(env, "token", "create", "alice").stdout.strip()

    listed = json.loads(run(env, "token", "list", "alice", "--json").stdout)
    assert [(t["user"], t["label"], t["revoked"]) for t in listed] == [("alice", "laptop", False),
                                                                       ("alice", None, False)]
    assert listed[0]["expires_at"] and listed[1]["expires_at"] is None
    assert token not in json.dumps(listed) and second not in run(env, "token", "list").stdout

    run(env, "token", "revoke", str(listed[0]["id"]))
    assert (_check(env, token), _check(env, second)) == ("revoked", None)
    assert "no token with id" in run(env, "token", "revoke", "424242", code=1).stderr

    run(env, "user", "disable", "alice")
    assert _check(env, second) == "disabled"
    assert json.loads(run(env, "user", "list", "--json").stdout)[0] | {"created_at": ""} == {
        "name": "alice", "role": "agent", "teams": ["complaints"], "disabled": True, "created_at": ""}
    run(env, "user", "enable", "alice")
    assert _check(env, second) is None
    changed = run(env, "user", "change", "alice", "--role", "supervisor", "--team", "claims", "--team", "fraud")
    assert "alice is now supervisor in claims, fraud" in changed.stdout
    assert "in no team" in run(env, "user", "change", "alice", "--no-team").stdout
    assert "is not one of" in run(env, "user", "change", "alice", "--role", "root", code=1).stderr
    assert "say what changes" in run(env, "user", "change", "alice", code=2).stderr
    assert "1 token(s) of alice revoked" in run(env, "token", "revoke", "--user", "alice").stdout
    assert _check(env, second) == "revoked"
