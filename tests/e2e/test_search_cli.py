"""What the pipeline files is found by `casework search`, and by nobody it should be hidden from."""

from __future__ import annotations

from pathlib import Path

from api.settings import Settings
from api.wiring import open_runtime
from casestore.search.port import SearchQuery, Viewer
from tests.e2e.test_cli_pipeline import CASES, CUSTOMERS, email, run, run_json


def _jane_writes(tmp_path: Path, env: dict[str, str], body: str, message_id: str, cases: str = CASES) -> None:
    """Import the customers and ``cases``, then ingest Jane's email quoting her case: attached."""
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(cases)
    run(env, "import", "customers", str(tmp_path / "customers.csv"), check=False)
    run(env, "import", "cases", str(tmp_path / "cases.csv"))
    mail = tmp_path / "m.eml"
    mail.write_bytes(email("jane.doe@example.com", "CM-2025-004817", body, message_id))
    assert run_json(env, "ingest", str(mail), "--json")["attached"] == 1


def test_ingested_mail_is_searchable_and_reindex_keeps_the_count(tmp_path: Path, user_env: dict[str, str]) -> None:
    _jane_writes(tmp_path, user_env, "The aubergine parcel never came.", "s1@x")

    found = run_json(user_env, "search", "aubergine", "--json")
    assert found["total"] == 1 and found["hits"][0]["case_ref"] == "CM-2025-004817"
    assert run_json(user_env, "search", "courgette", "--json")["total"] == 0
    run(user_env, "reindex")
    assert run_json(user_env, "search", "aubergine", "--json")["total"] == 1


def _agent_hits(data_dir: Path, db_url: str, query: str, team: str) -> int:
    settings = Settings(data_dir=data_dir, db={"url": "" if db_url.startswith("sqlite") else db_url})
    rt = open_runtime(settings)
    try:
        return rt.search_index.search(SearchQuery(text=query), Viewer(role="agent", teams=(team,))).total
    finally:
        rt.close()


def test_reimporting_a_case_into_another_team_moves_its_documents_in_search(
    tmp_path: Path, user_env: dict[str, str], db_url: str
) -> None:
    header, *rows = CASES.strip().splitlines()
    with_team = "\n".join([f"{header},team", *(f"{r},complaints" for r in rows)]) + "\n"
    _jane_writes(tmp_path, user_env, "The aubergine parcel never came.", "s2@x", cases=with_team)
    data_dir = Path(user_env["CASEWORK_DATA_DIR"])
    assert _agent_hits(data_dir, db_url, "aubergine", "complaints") == 1

    (tmp_path / "moved.csv").write_text(f"{header},team\n{rows[0]},fraud\n")  # the case moves to fraud
    assert run_json(user_env, "import", "cases", str(tmp_path / "moved.csv"), "--json")["updated"] == 1
    assert _agent_hits(data_dir, db_url, "aubergine", "complaints") == 0, "the old team must lose it at once"
    assert _agent_hits(data_dir, db_url, "aubergine", "fraud") == 1


def test_a_renamed_customer_is_found_by_the_new_name(tmp_path: Path, user_env: dict[str, str]) -> None:
    _jane_writes(tmp_path, user_env, "Still no parcel.", "s3@x")
    assert run_json(user_env, "search", "Featherstonehaugh", "--json")["total"] == 0
    header, jane = CUSTOMERS.splitlines()[:2]
    (tmp_path / "renamed.csv").write_text(f"{header}\n{jane.replace('Jane Doe', 'Jane Featherstonehaugh')}\n")
    run(user_env, "import", "customers", str(tmp_path / "renamed.csv"))
    found = run_json(user_env, "search", "Featherstonehaugh", "--json")
    assert found["total"] == 1 and found["hits"][0]["case_ref"] == "CM-2025-004817"
