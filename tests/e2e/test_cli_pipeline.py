"""The foundation's promise, tried as a user would: import a customer and a case, ingest an email
quoting the case reference, find it filed once with its audit trail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CASEWORK = [sys.executable, "-m", "api"]

CUSTOMERS = """customer_id,name,email,phone,address,postcode,account_number
C-1001,Jane Doe,Jane.Doe@example.com,+44 7700 900123,1 High Street,AB1 2CD,ACC-0001
C-1002,John Roe,john@example.org,,2 Low Road,ZZ9 9ZZ,ACC-0002
bad-row-without-name,,nobody@example.com,,,,
"""
CASES = """ref,customer_id,case_type,status,opened_at,subject
CM-2025-004817,C-1001,complaint,open,2025-03-01T09:00:00Z,Late delivery
CM-2025-004818,C-1002,claim,open,2025-03-02T09:00:00Z,Broken parcel
"""


def email(sender: str, subject: str, body: str, message_id: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: cases@casework.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"casework {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_json(env: dict[str, str], *args: str, check: bool = True) -> Any:
    return json.loads(run(env, *args, check=check).stdout)


def test_email_quoting_a_case_is_filed_once_with_audit(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = user_env
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    imported = run(env, "import", "customers", str(tmp_path / "customers.csv"), "--json", check=False)
    assert imported.returncode == 1, "a rejected row must show in the exit code"
    report = json.loads(imported.stdout)
    assert report["errors"] and report["errors"][0]["line"] == 4
    assert report["created"] + report["updated"] == 2
    cases = run_json(env, "import", "cases", str(tmp_path / "cases.csv"), "--json")
    assert cases["errors"] == []

    mail = tmp_path / "in" / "reply.eml"
    mail.parent.mkdir()
    mail.write_bytes(email("Jane Doe <jane.doe@example.com>", "Re: CM-2025-004817 still waiting",
                           "Hello, my parcel has still not arrived. Regards, Jane", "m1@example.com"))
    first = run_json(env, "ingest", str(mail), "--json")
    assert first["attached"] == 1, first
    result = first["results"][0]
    assert result["case_ref"] == "CM-2025-004817" and result["duplicate"] is False

    again = run_json(env, "ingest", str(mail), "--json")
    assert again["attached"] == 1 and again["results"][0]["duplicate"] is True
    assert again["results"][0]["item_id"] == result["item_id"]

    folder = run_json(env, "case", "show", "CM-2025-004817", "--json")
    assert folder["customer"]["customer_id"] == "C-1001"
    assert [d["item_id"] for d in folder["documents"]] == [result["item_id"]]
    filed = [a for a in folder["audit"] if a["action"] == "item.filed"]
    assert len(filed) == 1 and filed[0]["item_id"] == result["item_id"]

    item = run_json(env, "item", "show", result["item_id"], "--json")
    assert "parcel has still not arrived" in item["text"]

    human = run(env, "case", "show", "CM-2025-004817")
    assert "item.filed" in human.stdout


def test_stranger_quoting_a_reference_goes_to_triage_and_bad_files_fail_with_reason(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    env = user_env
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(env, "import", "customers", str(tmp_path / "customers.csv"), check=False)
    run(env, "import", "cases", str(tmp_path / "cases.csv"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "stranger.eml").write_bytes(email("mallory@evil.example", "About CM-2025-004817",
                                               "Please send me the documents for this case.", "m2@evil.example"))
    (inbox / "new-person.eml").write_bytes(email("newbie@example.net", "Complaint about your service",
                                                 "I want to complain about the rude call I got.", "m3@example.net"))
    (inbox / "ooo.eml").write_bytes(
        b"From: john@example.org\r\nSubject: Automatic reply: CM-2025-004818\r\nAuto-Submitted: auto-replied\r\n"
        b"Message-ID: <ooo1@example.org>\r\n\r\nI am out of the office until Monday.\r\n")
    (inbox / "empty.pdf").write_bytes(b"")
    report = run_json(env, "ingest", str(inbox), "--json", check=False)
    by_name = {Path(r["source"]).name: r for r in report["results"]}
    assert by_name["stranger.eml"]["outcome"] == "triage"
    assert by_name["stranger.eml"]["case_ref"] is None
    assert by_name["new-person.eml"]["outcome"] == "new_case"
    assert by_name["new-person.eml"]["doc_type"] == "complaint"
    assert by_name["ooo.eml"]["outcome"] == "noise"
    assert by_name["empty.pdf"]["outcome"] == "failed"
    assert "empty" in by_name["empty.pdf"]["error"].lower()
    assert report["failed"] == 1

    folder = run_json(env, "case", "show", "CM-2025-004817", "--json")
    assert folder["documents"] == [], "a stranger's mail must never land in the case"
    new_ref = by_name["new-person.eml"]["case_ref"]
    assert new_ref.startswith("CW-")
    assert run_json(env, "case", "show", new_ref, "--json")["documents"]

    dead = run_json(env, "dlq", "list", "--json")
    assert [d["stage"] for d in dead] == ["extract"]
    assert dead[0]["item_id"] == by_name["empty.pdf"]["item_id"]


def test_clear_errors_for_unknown_case_and_missing_file(tmp_path: Path, user_env: dict[str, str]) -> None:
    shown = run(user_env, "case", "show", "CM-0000-000000", check=False)
    assert shown.returncode != 0 and "CM-0000-000000" in shown.stderr
    missing = run(user_env, "ingest", str(tmp_path / "nope.eml"), "--json", check=False)
    report = json.loads(missing.stdout)
    assert report["failed"] == 1 and "cannot read" in report["results"][0]["error"]


def test_bus_retention_commands_and_a_bad_setting(tmp_path: Path, user_env: dict[str, str]) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"{i}.eml").write_bytes(email(f"someone{i}@example.net", f"Question {i}", "When do you open?",
                                               f"q{i}@x"))
    assert run_json(user_env, "ingest", str(inbox), "--json")["new_case"] == 3
    pruned = run(user_env, "bus", "prune", "--older-than-hours", "0")
    # every stage committed its topic; the newest record of each partition stays
    assert int(pruned.stdout.split()[0]) > 0, pruned.stdout
    forgot = run(user_env, "bus", "forget-group", "casework.extract")
    assert "forgotten" in forgot.stdout
    unknown = run(user_env, "bus", "forget-group", "casework.extract", check=False)
    assert unknown.returncode == 2 and "no consumer group" in unknown.stderr
    bad = run({**user_env, "CASEWORK_BUS__RETENTION_HOURS": "a week"}, "bus", "prune", check=False)
    assert bad.returncode == 2 and "CASEWORK_BUS__RETENTION_HOURS='a week'" in bad.stderr.replace("\n", " ")
    assert "Traceback" not in bad.stderr
