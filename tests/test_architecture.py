"""The architecture of DESIGN.md, checked: dependencies run one way (the import-linter contracts
in pyproject.toml).  A new import that breaks a contract fails here, naming the import chain.
import-linter runs in a child process: in this one it would reconfigure logging for later tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ("import sys; from importlinter.cli import lint_imports; "
       "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def test_dependencies_run_one_way() -> None:
    proc = subprocess.run([sys.executable, "-c", RUN, str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"an import breaks the architecture:\n{proc.stdout}\n{proc.stderr}"
