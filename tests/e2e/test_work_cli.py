"""Working a case from the command line, as a new user would: import a complaint, an agent gets it,
ticks the checklist, completes it with a code; a supervisor waives an item with a reason; the
customer's reply puts the case back in front of the agent; the case closes with a code."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_pipeline import email, run, run_json

CUSTOMERS = """customer_id,name,email
C-1001,Jane Doe,jane.doe@example.com
"""
CASES = """ref,customer_id,case_type,status,opened_at,subject,team,stage
CM-2025-004817,C-1001,complaint,open,2025-03-01T09:00:00Z,Late delivery,complaints,
CM-2025-004818,C-1001,complaint,open,2025-03-02T09:00:00Z,Rude call,complaints,response
"""
REF = "CM-2025-004817"


def test_an_agent_works_an_imported_complaint(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = user_env
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(env, "import", "customers", str(tmp_path / "customers.csv"))
    assert run_json(env, "import", "cases", str(tmp_path / "cases.csv"), "--json")["errors"] == []
    run(env, "user", "add", "alice", "--role", "agent", "--team", "complaints")
    run(env, "user", "add", "sue", "--role", "supervisor")
    later = run_json(env, "case", "show", "CM-2025-004818", "--json")["work"]
    assert later["stage"] == "response" and [t["name"] for t in later["tasks"]] == ["send_response"]

    task = run_json(env, "task", "claim", str(_task_id(env, "acknowledge")), "--as", "alice", "--json")
    task_id = str(task["id"])
    early = run(env, "task", "complete", task_id, "--code", "acknowledged", "--as", "alice", check=False)
    assert early.returncode == 1 and "details_recorded" in early.stderr
    for item in ("details_recorded", "acknowledgement_sent"):
        run(env, "task", "tick", task_id, item, "--as", "alice")
    refused = run(env, "task", "waive", task_id, "vulnerability_checked", "--reason", "x", "--as", "alice",
                  check=False)
    assert refused.returncode == 1 and "may not waive item" in refused.stderr
    run(env, "task", "waive", task_id, "vulnerability_checked", "--reason", "checked on the phone", "--as", "sue")
    done = run_json(env, "task", "complete", task_id, "--code", "acknowledged", "--as", "alice", "--json")
    assert done["state"] == "completed"

    mail = tmp_path / "in" / "reply.eml"
    mail.parent.mkdir()
    mail.write_bytes(email("Jane Doe <jane.doe@example.com>", f"Re: {REF} still waiting",
                           "Hello, my parcel has still not arrived. Regards, Jane", "m1@example.com"))
    assert run_json(env, "ingest", str(mail), "--json")["attached"] == 1
    work = run_json(env, "case", "show", REF, "--json")["work"]
    review = [t for t in work["tasks"] if t["name"] == "review_reply"]
    assert [(t["state"], t["assignee"]) for t in review] == [("active", "alice")]  # back in front of alice
    assert work["urgency"] == 5 and work["assignee"] == "alice"

    closed = run_json(env, "case", "close", REF, "--code", "withdrawn", "--as", "alice", "--reason", "she withdrew",
                      "--json")
    assert (closed["status"], closed["completion_code"]) == ("closed", "withdrawn")
    waived = [h for h in closed["history"] if h["action"] == "checklist.waived"]
    assert [(h["actor"], h["reason"]) for h in waived] == [("sue", "checked on the phone")]
    human = run(env, "case", "show", REF)
    assert "work: complaint v3, stage intake, closed (withdrawn), urgency 5, owner alice" in human.stdout


def _task_id(env: dict[str, str], name: str) -> int:
    work = run_json(env, "case", "show", REF, "--json")["work"]
    return int(next(t["id"] for t in work["tasks"] if t["name"] == name))
