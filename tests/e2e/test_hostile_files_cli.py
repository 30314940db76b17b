"""`casework ingest` on hostile files, as a user would run it: each is refused or bounded with a reason,
the good files beside them are filed, and no process of the run grows past 1 GiB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.ingest.hostile_files import big_pages, blank_png, flate_bomb, hex_flate_bomb

CASEWORK = [sys.executable, "-m", "api"]
GIB = 1 << 30


def ingest(env: dict[str, str], tmp_path: Path, *paths: Path) -> tuple[int, dict[str, Any], str, int]:
    """(exit code, the --json report, stderr, peak RSS in MiB of the largest process of the run).

    ``os.wait4`` reports the largest resident size of the child and of every descendant it waited for
    (the PDF reader child, tesseract), so a bomb that blew up any of them shows here."""
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([*CASEWORK, "ingest", *map(str, paths), "--json"], env=env,
                                   stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, json.loads(out.read_text()), err.read_text(), usage.ru_maxrss // 1024


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(r["source"]).name: r for r in report["results"]}


def test_hostile_pdfs_and_images_are_refused_and_no_process_passes_1_gib(
        tmp_path: Path, user_env: dict[str, str]) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "bomb-2gib.pdf").write_bytes(flate_bomb(2 * GIB))  # 2 MiB: 3.2 GB before
    (drop / "bomb-behind-hex.pdf").write_bytes(hex_flate_bomb(GIB))  # the stream check cannot see it
    (drop / "three-200-inch-pages.pdf").write_bytes(big_pages(200, pages=3))  # 541 bytes: over 8 GB before
    (drop / "12000px.png").write_bytes(blank_png(12000, 12000))  # 440 KB: 1.9 GB before
    (drop / "letter.txt").write_text("Dear sirs, my boiler is broken again.")

    code, report, stderr, peak_mb = ingest(user_env, tmp_path, drop)
    results = _by_name(report)
    assert peak_mb < 1024, f"a process of the run reached {peak_mb} MiB"
    assert code == 1 and report["failed"] == 2, stderr  # the two bombs are refused (dead-lettered) ...
    assert "max_pdf_stream_mb" in results["bomb-2gib.pdf"]["error"]
    assert "pdf_memory_mb" in results["bomb-behind-hex.pdf"]["error"]
    assert results["letter.txt"]["outcome"] != "failed"  # ... and the rest flows
    for name in ("three-200-inch-pages.pdf", "12000px.png"):  # filed, unread, with the reason on the item
        assert results[name]["outcome"] not in (None, "failed"), results[name]
    shown = subprocess.run([*CASEWORK, "item", "show", results["three-200-inch-pages.pdf"]["item_id"], "--json"],
                           env=user_env, capture_output=True, text=True, timeout=120, check=True)
    assert "max_render_pixels" in shown.stdout
    shown = subprocess.run([*CASEWORK, "item", "show", results["12000px.png"]["item_id"], "--json"],
                           env=user_env, capture_output=True, text=True, timeout=120, check=True)
    assert "max_image_mb" in shown.stdout


def test_a_file_name_that_is_not_utf8_is_ingested_with_the_good_files_beside_it(
        tmp_path: Path, user_env: dict[str, str]) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / os.fsdecode(b"r\xe9clamation.txt")).write_text("My complaint about the noise at night.")
    (drop / "good-1.txt").write_text("A good letter about my boiler.")
    (drop / "good-2.txt").write_text("Another good letter about the heating.")

    code, report, stderr, _ = ingest(user_env, tmp_path, drop)
    assert code == 0 and "Traceback" not in stderr, stderr
    results = _by_name(report)
    assert set(results) == {"r\\xe9clamation.txt", "good-1.txt", "good-2.txt"}
    assert all(r["outcome"] not in (None, "failed") for r in results.values()), results
