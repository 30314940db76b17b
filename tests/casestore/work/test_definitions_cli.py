"""`casework casetype check | load | list`, run as a real subprocess against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from casestore.db import make_engine
from casestore.work.loader import SHIPPED_DIR
from casestore.work.models import CaseTypeVersion

CASEWORK = [sys.executable, "-m", "api", "casetype"]


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CASEWORK, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_check_accepts_the_shipped_definitions() -> None:
    proc = _run(["check", str(SHIPPED_DIR)])
    assert proc.returncode == 0, proc.stderr
    assert "6 case type(s) OK" in proc.stdout
    assert "complaint v3: 3 stages" in proc.stdout and "default general" in proc.stdout


def test_check_lists_every_problem_as_file_line_message(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    shutil.copytree(SHIPPED_DIR, folder)
    complaint = folder / "complaint.yaml"
    text = complaint.read_text()
    complaint.write_text(text.replace("queue: complaints_intake\n        after: [acknowledge]",
                                      "queue: complaints_intake\n        after: [acknowledgement]"))
    line = next(n for n, x in enumerate(complaint.read_text().splitlines(), 1) if "[acknowledgement]" in x)
    (folder / "mapping.yaml").write_text("complaint: complaint\nclaim: claims\ndefault: general\n")
    proc = _run(["check", str(folder)])
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert f"{complaint}:{line}: after names unknown task 'acknowledgement': use a task of stage 'intake' " \
           "(acknowledge, assess, review_reply)" in lines
    assert f"{folder / 'mapping.yaml'}:2: claim: unknown case type 'claims': use one of application, arrears, " \
           "change_of_details, claim, complaint, general" in lines
    assert lines[-1].startswith("2 problem(s)")
    assert proc.stdout == ""


def test_load_then_list(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    shutil.copytree(SHIPPED_DIR, folder)
    env = {"CASEWORK_DATA_DIR": str(tmp_path / "data"), "CASEWORK_DB__URL": db_url,
           "CASEWORK_WORK__CASE_TYPES_DIR": str(folder)}
    proc = _run(["load"], env)
    assert proc.returncode == 0, proc.stderr
    assert "complaint v3: stored" in proc.stdout
    assert "complaint v3: unchanged" in _run(["load"], env).stdout

    general = folder / "general.yaml"
    general.write_text(general.read_text().replace("lease: 15m", "lease: 20m"))  # changed, version not bumped
    claim = folder / "claim.yaml"
    claim.write_text(claim.read_text().replace("version: 2", "version: 3"))
    listed = json.loads(_run(["list", "--json"], env).stdout)
    assert listed["case_types_dir"] == str(folder) and listed["problems"] == []
    states = {f["name"]: (f["version"], f["state"]) for f in listed["files"]}
    assert states["complaint"] == (3, "loaded")
    assert states["general"] == (2, "changed: bump version")
    assert states["claim"] == (3, "not loaded")
    assert {(r["name"], r["version"], r["current"]) for r in listed["registered"]} >= {("claim", 2, True)}

    refused = _run(["load"], env)  # general changed without a version bump: nothing is stored
    assert refused.returncode == 2
    version_line = general.read_text().splitlines().index("version: 2") + 1
    assert f"{general}:{version_line}: general version 2 is already stored with different content" in refused.stderr
    assert "bump version" in refused.stderr
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = {(r.name, r.version) for r in conn.execute(select(CaseTypeVersion.name, CaseTypeVersion.version))}
    finally:
        engine.dispose()
    assert stored == {(n, 2) for n in ("application", "arrears", "change_of_details", "claim", "general")} | {
        ("complaint", 3)}


def test_check_refuses_an_on_complete_template_that_does_not_exist(tmp_path: Path) -> None:
    """``on_complete.send.template`` is checked against the templates of the type and channel: the
    shipped ones and those of CASEWORK_OUTBOUND__TEMPLATES_DIR."""
    folder = tmp_path / "defs"
    shutil.copytree(SHIPPED_DIR, folder)
    complaint = folder / "complaint.yaml"
    text = complaint.read_text()
    assert text.count("send: {template: outcome, channel: letter}") == 1
    complaint.write_text(text.replace("send: {template: outcome, channel: letter}",
                                      "send: {template: final_outcome, channel: letter}"))
    line = next(n for n, x in enumerate(complaint.read_text().splitlines(), 1) if "final_outcome" in x)
    env = {"CASEWORK_OUTBOUND__TEMPLATES_DIR": str(tmp_path / "templates")}
    proc = _run(["check", str(folder)], env)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.splitlines()[0] == (
        f"{complaint}:{line}: on_complete sends template 'final_outcome' on letter, but there is no letter template "
        "'final_outcome' for case type 'complaint': use one of acknowledgement, outcome, request_for_information "
        "or add complaint/final_outcome.letter.j2 to the templates folder (CASEWORK_OUTBOUND__TEMPLATES_DIR)")
    # once the configured folder has it for letters, the definition is accepted
    (tmp_path / "templates" / "complaint").mkdir(parents=True)
    (tmp_path / "templates" / "complaint" / "final_outcome.letter.j2").write_text("We decided.\n")
    proc = _run(["check", str(folder)], env)
    assert proc.returncode == 0, proc.stderr
