"""`casework notifications --as NAME`, as a user would run it: an imported complaint's acknowledgement
breaches, the escalation notifies supervisors, and the complaints team's supervisor reads it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from api.settings import DbSettings, Settings
from api.wiring import open_runtime
from casestore.models import utcnow
from casestore.work.clock_loop import sweep
from tests.e2e.test_cli_pipeline import run, run_json

CUSTOMERS = "customer_id,name,email\nC-1001,Jane Doe,jane.doe@example.com\n"
CASES = "ref,customer_id,case_type,status,opened_at,subject,team,stage\n" \
        "CM-2025-004817,C-1001,complaint,open,2025-03-01T09:00:00Z,Late delivery,complaints,\n"


def test_a_supervisor_reads_the_breach_notice_of_their_team(tmp_path: Path, user_env: dict[str, str],
                                                            db_url: str) -> None:
    env = user_env
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(env, "import", "customers", str(tmp_path / "customers.csv"))
    assert run_json(env, "import", "cases", str(tmp_path / "cases.csv"), "--json")["errors"] == []
    run(env, "user", "add", "cat", "--role", "supervisor", "--team", "complaints")
    run(env, "user", "add", "sam", "--role", "supervisor", "--team", "claims")
    run(env, "user", "add", "alice", "--role", "agent", "--team", "complaints")
    settings = Settings(data_dir=Path(env["CASEWORK_DATA_DIR"]),
                        **({"db": DbSettings(url=db_url)} if db_url.startswith("postgresql") else {}))
    rt = open_runtime(settings)
    try:  # the clock loop, a month on (what `casework serve` does every few seconds)
        with rt.sessions() as s, s.begin():
            assert sweep(s, now=utcnow() + timedelta(days=30)).breached >= 1
    finally:
        rt.close()

    feed = run_json(env, "notifications", "--as", "cat", "--json")
    assert {n["case_ref"] for n in feed["notices"]} == {"CM-2025-004817"}
    assert any(n["clock"] == "acknowledgement" and n["event"] == "breach" for n in feed["notices"])
    assert feed["unread"] == len(feed["notices"])
    assert run_json(env, "notifications", "--as", "sam", "--json")["notices"] == []
    assert run_json(env, "notifications", "--as", "alice", "--json")["notices"] == []
    human = run(env, "notifications", "--as", "cat", "--seen")
    assert "CM-2025-004817" in human.stdout and "0 unread" in human.stdout
    assert run_json(env, "notifications", "--as", "cat", "--unread", "--json")["notices"] == []
    unknown = run(env, "notifications", "--as", "nobody", check=False)
    assert unknown.returncode != 0 and "nobody" in unknown.stderr
