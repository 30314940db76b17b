"""The real scans through the command line, as a mailroom would feed them: one `casework ingest` for
all five, then `casework item show` finds the words a person reads on each page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CASEWORK = [sys.executable, "-m", "api"]
SCANS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "scans"

# The same words as tests/ingest/test_extract_scans.py: what a person reads on each page.
KNOWN_WORDS = {
    "libtiffnet__CCITT_1_slerexe_business_letter_g4.tif": ["SLEREXE", "facsimile", "Cundall", "photocell", "DORSET"],
    "libtiffnet__fax2d_1990_real_fax_g3.tif": ["Oxford Business", "Leffler", "backup", "recover", "UNIX Programmer"],
    "ocrmypdf__typewriter_text.png": ["Linzensoep", "Waterman", "linzen", "kopjes", "laurier"],
    "leptonica__feyn_skewed_page_g4.tif": ["FEYNMAN", "Caltech", "Gell-Mann", "Oxford", "Julie"],
    "ocrmypdf__cardinal_4_rotations.pdf": ["LinnSequencer", "MIDI", "polyphonic", "Sequence Recorder"],
}

pytestmark = [
    pytest.mark.skipif(not SCANS.is_dir(), reason=f"corpus not found at {SCANS}"),
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed"),
]


def run_json(env: dict[str, str], *args: str) -> Any:
    proc = subprocess.run([*CASEWORK, *args], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"casework {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    clean["CASEWORK_DATA_DIR"] = str(tmp_path_factory.mktemp("scans-cli") / "data")
    return clean


@pytest.fixture(scope="module")
def ingested(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """One `casework ingest --json` over all five scans; its results by file name."""
    report = run_json(env, "ingest", *(str(SCANS / name) for name in KNOWN_WORDS), "--json")
    return {Path(r["source"]).name: r for r in report["results"]}


def test_every_scan_gets_an_outcome(ingested: dict[str, dict[str, Any]]) -> None:
    assert sorted(ingested) == sorted(KNOWN_WORDS)
    failed = {name: r["error"] for name, r in ingested.items() if r["outcome"] == "failed"}
    assert not failed, failed
    assert all(r["outcome"] and r["item_id"] for r in ingested.values()), ingested


@pytest.mark.parametrize("name", list(KNOWN_WORDS))
def test_item_show_finds_the_known_words(env: dict[str, str], ingested: dict[str, dict[str, Any]], name: str) -> None:
    item = run_json(env, "item", "show", ingested[name]["item_id"], "--json")
    missing = [word for word in KNOWN_WORDS[name] if word not in item["text"]]
    assert not missing, f"not found in {name}: {missing}\n{item['text'][:1500]}"
