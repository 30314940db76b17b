"""Issue 15.12: uploads are published off the event loop, concurrent ones in one bus commit
(``api.upload_intake.GroupPublisher``), on the real SQLite bus."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api.upload_intake import GroupPublisher
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from ingest.intake import make_raw_item
from ingest.messages import TOPIC_RAW, RawItem


def _raws(tmp_path: Path, n: int) -> list[RawItem]:
    blobs = FileBlobStore(tmp_path / "blobs")
    return [make_raw_item(blobs=blobs, data=f"letter {i}".encode(), channel="api", filename=f"{i}.txt",
                          source="api:robot") for i in range(n)]


def test_every_concurrent_upload_is_on_the_bus_when_it_is_answered(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "bus.db", partitions=2)
    publisher = GroupPublisher(bus)
    raws = _raws(tmp_path, 40)

    async def upload_all() -> None:
        await asyncio.gather(*(publisher.publish(r) for r in raws))

    asyncio.run(upload_all())
    consumer = bus.consumer([TOPIC_RAW], group="check")
    keys: list[str] = []
    while records := consumer.poll(max_records=100, timeout=0.3):
        keys.extend(r.key for r in records)
    consumer.close()
    bus.close()
    assert sorted(keys) == sorted(r.item_id for r in raws)  # each once
    assert 1 <= publisher.batches <= len(raws)


def test_a_bus_error_reaches_every_waiting_upload(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "bus.db", partitions=1)
    bus.close()  # a bus that cannot write
    publisher = GroupPublisher(bus)

    async def upload_all() -> list[BaseException | None]:
        return await asyncio.gather(*(publisher.publish(r) for r in _raws(tmp_path, 5)), return_exceptions=True)

    results = asyncio.run(upload_all())
    assert len(results) == 5 and all(isinstance(r, Exception) for r in results)  # none hangs, none "accepted"
