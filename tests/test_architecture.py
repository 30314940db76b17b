"""The architecture of DESIGN.md, checked: dependencies run one way (the import-linter contracts
in pyproject.toml).  A new import that breaks a contract fails here, naming the import chain."""

from __future__ import annotations

import os
from pathlib import Path

from importlinter import cli

ROOT = Path(__file__).resolve().parents[1]


def test_dependencies_run_one_way() -> None:
    cwd = Path.cwd()
    os.chdir(ROOT)  # import-linter finds the packages from the working directory
    try:
        code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, "an import breaks the architecture: see the contract report above"
