"""What the pipeline files is found by `casework search`, and by nobody it should be hidden from."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_pipeline import CASES, CUSTOMERS, email, run, run_json


def test_ingested_mail_is_searchable_and_reindex_keeps_the_count(tmp_path: Path, user_env: dict[str, str]) -> None:
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(user_env, "import", "customers", str(tmp_path / "customers.csv"), check=False)
    run(user_env, "import", "cases", str(tmp_path / "cases.csv"))
    mail = tmp_path / "m.eml"
    mail.write_bytes(email("jane.doe@example.com", "CM-2025-004817", "The aubergine parcel never came.", "s1@x"))
    assert run_json(user_env, "ingest", str(mail), "--json")["attached"] == 1

    found = run_json(user_env, "search", "aubergine", "--json")
    assert found["total"] == 1 and found["hits"][0]["case_ref"] == "CM-2025-004817"
    assert run_json(user_env, "search", "courgette", "--json")["total"] == 0
    run(user_env, "reindex")
    assert run_json(user_env, "search", "aubergine", "--json")["total"] == 1
