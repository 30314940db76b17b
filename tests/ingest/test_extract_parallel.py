"""The extract stage reads on every core (issue 15.10): the items of one poll are extracted in
parallel, with at most ``ocr_processes`` tesseract processes alive at once. Proved by watching the
process list while the stage works, not by timing."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.orm import Session, sessionmaker

from ingest.blobs import FileBlobStore
from ingest.errors import BadInput, Unavailable
from ingest.extract import Extraction, ExtractLimits
from ingest.intake import describe_raw_item
from ingest.messages import ExtractedItem, RawItem
from ingest.pipeline import ExtractStage
from ingest.runner import reading_order

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")


def scan(number: int) -> bytes:
    """A small scanned line of text, a different one per number (so each is its own item)."""
    image = Image.new("L", (1400, 360), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    draw.text((40, 60), f"Letter {number} about account 22142500", fill=0, font=font)
    draw.text((40, 180), "Please call me back about my claim", fill=0, font=font)
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(300, 300))
    return out.getvalue()


def our_tesseracts() -> int:
    """tesseract processes whose parent is this process (prlimit execs tesseract in the child it starts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if name == "tesseract" and ppid == os.getpid():
            count += 1
    return count


class Watch:
    """The most tesseract processes of ours seen alive at once while the block runs."""

    def __init__(self) -> None:
        self.most = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.005):
            self.most = max(self.most, our_tesseracts())

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def raw_items(blobs: FileBlobStore, datas: list[bytes]) -> list[RawItem]:
    return [describe_raw_item(blobs.put(data), data, channel="scan", filename=f"scan{n}.png", source=f"scan{n}.png")
            for n, data in enumerate(datas)]


def run_stage(stage: ExtractStage, items: list[RawItem]) -> list[ExtractedItem]:
    """As the worker does: one prepare per poll, then one handle_batch per message."""
    stage.prepare(items)
    out = []
    for raw in items:
        for _topic, _key, message in stage.handle_batch([raw]):
            assert isinstance(message, ExtractedItem)
            out.append(message)
    return out


@pytest.mark.parametrize("processes", [1, 2])
def test_the_items_of_a_poll_are_ocred_by_ocr_processes_tesseracts_at_once(
    tmp_path: Path, sessions: sessionmaker[Session], processes: int
) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    stage = ExtractStage(blobs=blobs, limits=ExtractLimits(ocr_processes=processes), sessions=sessions)
    items = raw_items(blobs, [scan(n) for n in range(1, 4)])
    with Watch() as watch:
        extracted = run_stage(stage, items)
    assert [e.item_id for e in extracted] == [i.item_id for i in items]  # in poll order
    for n, item in enumerate(extracted, 1):
        assert f"Letter {n}" in item.parts[0].text
    assert watch.most == processes  # all of them used, never more


def test_ocr_processes_defaults_to_one_per_core(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    stage = ExtractStage(blobs=FileBlobStore(tmp_path), limits=ExtractLimits(), sessions=sessions)
    assert stage.workers == (os.cpu_count() or 1)
    assert ExtractLimits().ocr_workers() == (os.cpu_count() or 1)
    assert ExtractLimits(ocr_processes=3).ocr_workers() == 3


def test_a_bad_item_read_in_parallel_fails_alone_through_the_worker_policy(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    stage = ExtractStage(blobs=blobs, limits=ExtractLimits(ocr_processes=2), sessions=sessions)
    good, bad = raw_items(blobs, [scan(1), b"%PDF-1.4\n1 0 obj<<>>endobj\n"])
    stage.prepare([good, bad])
    assert "Letter 1" in stage.handle_batch([good])[0][2].parts[0].text  # type: ignore[attr-defined]
    with pytest.raises(BadInput):
        stage.handle_batch([bad])  # raised here, to the worker, which retries or dead-letters it
    with pytest.raises(BadInput):
        stage.handle_batch([bad])  # a retry reads it again


def test_items_not_begun_when_the_stage_stops_are_left_for_redelivery(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    stop = threading.Event()
    stage = ExtractStage(blobs=blobs, limits=ExtractLimits(ocr_processes=2), sessions=sessions, stop=stop)
    items = reading_order(raw_items(blobs, [scan(n) for n in range(1, stage.threads + 2)]))  # as started
    stage.prepare(items)  # one more item than threads: the last waits until one of the others is read
    stop.set()
    for raw in items[:-1]:  # read in full if begun before the flag, else left like the last
        with contextlib.suppress(Unavailable):
            assert stage.handle_batch([raw])[0][2].parts[0].text  # type: ignore[attr-defined]
    with pytest.raises(Unavailable) as caught:  # retryable: a stopping worker leaves it uncommitted
        stage.handle_batch([items[-1]])
    assert caught.value.retryable


def big_scan(number: int) -> bytes:
    """A page of 30 lines: several times the bytes (and the tesseract time) of ``scan``."""
    image = Image.new("L", (2400, 3000), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    for line in range(30):
        draw.text((40, 40 + 95 * line), f"Page {number} line {line} about account 22142500 and the claim", fill=0,
                  font=font)
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(300, 300))
    return out.getvalue()


class Recording(ExtractStage):
    """The real stage, noting the order in which items begin to be read; ``hold`` (an item id) waits
    for ``release`` before it is read."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.begun: list[str] = []
        self.hold: str | None = None
        self.release = threading.Event()
        self._noted = threading.Lock()

    def _extract(self, raw: RawItem) -> Extraction:
        with self._noted:
            self.begun.append(raw.item_id)
        if raw.item_id == self.hold:
            assert self.release.wait(60)
        return super()._extract(raw)


def test_a_poll_starts_its_largest_items_first(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """Issue 15.10: the long pages of a poll start first, so a run does not end with one of them
    alone in tesseract; with more items than threads, the threads take the largest ones first."""
    blobs = FileBlobStore(tmp_path / "blobs")
    stage = Recording(blobs=blobs, limits=ExtractLimits(ocr_processes=2), sessions=sessions)
    items = raw_items(blobs, [scan(1), scan(2), scan(3), big_scan(4), scan(5), big_scan(6)])
    assert len(items) > stage.threads
    stage.prepare(items)
    big = {items[3].item_id, items[5].item_id}
    assert set(list(stage._started)[:2]) == big  # submitted to the pool first (its queue is first in, first out)
    for raw in items:
        assert stage.handle_batch([raw])[0][2].parts[0].text  # type: ignore[attr-defined]
    assert big <= set(stage.begun[:stage.threads])  # begun before any thread was free for the last two
    assert len(stage.begun) == len(items) and set(stage.begun) == {i.item_id for i in items}


def test_items_are_handed_on_as_their_reading_finishes(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """``done_order``: an item read early is handed on (collected) while an item begun before it is
    still being read; items the worker reads itself (no pool) come first, in poll order."""
    blobs = FileBlobStore(tmp_path / "blobs")
    stage = Recording(blobs=blobs, limits=ExtractLimits(ocr_processes=2), sessions=sessions)
    slow, fast1, fast2 = raw_items(blobs, [big_scan(1), scan(2), scan(3)])
    stage.hold = slow.item_id  # its reading waits until the others have been handed on
    stage.prepare([slow, fast1, fast2])
    handed: list[str] = []
    for record, raw in stage.done_order([("r1", slow), ("r2", fast1), ("r3", fast2)]):
        (_topic, _key, message), = stage.handle_batch([raw])
        handed.append(record)
        assert isinstance(message, ExtractedItem) and message.item_id == raw.item_id and message.parts[0].text
        if len(handed) == 2:
            stage.release.set()
    assert handed[2] == "r1" and sorted(handed[:2]) == ["r2", "r3"]

    solo = ExtractStage(blobs=blobs, limits=ExtractLimits(ocr_processes=1), sessions=sessions)
    solo.prepare([slow, fast1])  # one tesseract: no pool, read in the worker's thread in poll order
    assert [r for r, _ in solo.done_order([("a", slow), ("b", fast1)])] == ["a", "b"]
