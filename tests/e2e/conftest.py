from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def fresh_pg_url(_postgres: Any) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (the CLI migrates it, as on a first start)."""
    url: str = _postgres.create()
    yield url
    _postgres.drop(url)
