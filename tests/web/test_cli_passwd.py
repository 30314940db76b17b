"""`casework user passwd NAME`: from standard input for scripts, refused without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from api.settings import Settings
from api.wiring import open_runtime
from casestore.signin.passwords import check_password

CASEWORK = [sys.executable, "-m", "api"]


def test_passwd_sets_a_password_people_sign_in_with(tmp_path: Path, db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env["CASEWORK_DATA_DIR"] = str(tmp_path / "data")
    if db_url.startswith("postgresql"):
        env["CASEWORK_DB__URL"] = db_url

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CASEWORK, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)

    assert run("user", "add", "alice", "--role", "agent", "--team", "complaints").returncode == 0
    done = run("user", "passwd", "alice", "--password-stdin", stdin="a long pass phrase\n")
    assert done.returncode == 0, done.stderr
    no_tty = run("user", "passwd", "alice")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    weak = run("user", "passwd", "alice", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "at least 10" in weak.stderr
    unknown = run("user", "passwd", "nobody", "--password-stdin", stdin="a long pass phrase\n")
    assert unknown.returncode == 1 and "casework user add" in unknown.stderr
    settings = Settings(data_dir=tmp_path / "data", db={"url": env.get("CASEWORK_DB__URL", "")})
    rt = open_runtime(settings)
    try:
        with rt.read_sessions() as session:
            assert check_password(session, name="alice", password="a long pass phrase") is not None
    finally:
        rt.close()
