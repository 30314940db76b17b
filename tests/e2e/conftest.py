from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def fresh_pg_url(_postgres: Any) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (the CLI migrates it, as on a first start)."""
    url: str = _postgres.create()
    yield url
    _postgres.drop(url)


@pytest.fixture
def user_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    """The environment a user of the CLI has: a data directory of their own, SQLite or PostgreSQL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env["CASEWORK_DATA_DIR"] = str(tmp_path / "data")
    if db_url.startswith("postgresql"):
        env["CASEWORK_DB__URL"] = db_url
    return env
