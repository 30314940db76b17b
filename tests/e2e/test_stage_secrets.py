"""Issue 15.8: secrets reach the stage processes intact: a configured PDF password opens an
encrypted PDF under `casework ingest` with its stages in child processes, as it does in threads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
LOCKED = CORPUS / "pdf" / "pdfplumber__password_protected.pdf"  # its user password is "test"


@pytest.mark.skipif(not LOCKED.is_file(), reason="needs ../shared/corpus beside the clone")
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_pdf_password_reaches_the_stage_processes(tmp_path: Path, user_env: dict[str, str], mode: str) -> None:
    env = {**user_env, "CASEWORK_WORKER__STAGE_PROCESSES": mode,
           "CASEWORK_EXTRACT__PDF_PASSWORDS": json.dumps(["wrong", "test"])}
    proc = subprocess.run([sys.executable, "-m", "api", "ingest", str(LOCKED), "--json"], env=env,
                          capture_output=True, text=True, timeout=180)
    report = json.loads(proc.stdout)
    (result,) = report["results"]
    assert result["outcome"] != "failed", result
