"""``open_bus``: which URLs open which bus, and what a wrong one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.bus.factory import open_bus
from ingest.bus.kafka_bus import KafkaBus
from ingest.bus.sqlite_log import SqliteBus


@pytest.mark.parametrize("url", ["sqlite:", "sqlite://", "SQLite://"])
def test_bare_sqlite_url_means_bus_db_in_the_data_dir(tmp_path: Path, url: str) -> None:
    bus = open_bus(url, data_dir=tmp_path / "data", partitions=3)
    try:
        assert isinstance(bus, SqliteBus)
        assert bus.path == tmp_path / "data" / "bus.db" and bus.path.is_file()
        assert bus.partitions == 3
    finally:
        bus.close()


def test_sqlite_url_with_an_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "log.db"
    bus = open_bus(f"sqlite://{target}", data_dir=tmp_path / "data", session_timeout_ms=6000)
    try:
        assert isinstance(bus, SqliteBus) and bus.path == target and target.is_file()
        assert bus.session_timeout == 6.0
        assert not (tmp_path / "data").exists()
    finally:
        bus.close()


def test_kafka_url_with_several_brokers_opens_lazily(tmp_path: Path) -> None:
    bus = open_bus("kafka://k1:9092, k2:9093", data_dir=tmp_path, partitions=6, client_id="w", session_timeout_ms=6000)
    assert isinstance(bus, KafkaBus)
    assert (bus.bootstrap_servers, bus.partitions, bus.client_id, bus.session_timeout_ms) == (
        "k1:9092,k2:9093", 6, "w", 6000,
    )  # fmt: skip
    bus.close()  # nothing was connected, so nothing to wait for


@pytest.mark.parametrize(
    "url",
    [
        "postgres://x",
        "sqlite:relative.db",
        "sqlite://relative.db",
        "kafka://",
        "kafka://host",
        "kafka://h:99999",
        "kafka:h:1",
    ],
)
def test_unknown_or_malformed_urls_name_the_accepted_forms(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match=r"accepted forms: sqlite: .*kafka://host:port"):
        open_bus(url, data_dir=tmp_path)
