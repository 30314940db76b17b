"""The watched folder: complete files only, separator pages, per-folder metadata, duplicates."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from connectors.folder import FolderWatcher
from connectors.metrics import Registry
from connectors.settings import WatchedFolder
from connectors.state import StateStore
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import raw_items, wait_until
from tests.small_fs import fill, small_fs  # noqa: F401 - the fixture


def page(text: str | None) -> Image.Image:
    img = Image.new("L", (425, 550), 255)
    if text:
        draw = ImageDraw.Draw(img)
        for i in range(12):
            draw.text((40, 40 + 30 * i), f"{text} line {i} " * 3, fill=0)
        draw.rectangle((40, 450, 380, 500), fill=0)
    return img


def pdf_of(pages: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=50)
    return buf.getvalue()


def tiff_of(pages: list[Image.Image]) -> bytes:
    frames = [p.convert("1") for p in pages]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:], compression="group4")
    return buf.getvalue()


def test_stable_files_are_taken_once_with_folder_metadata(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                          registry: Registry) -> None:
    root = tmp_path / "scans"
    cfg = WatchedFolder(name="mailroom", path=str(root), channel="scan", team="claims", doc_type="claim_form",
                        subfolder_key="queue", stable_s=0.0, watch="poll")
    w = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry,
                      state=StateStore(tmp_path / "state.db"))
    (root / "urgent").mkdir()
    letter = pdf_of([page("hello")])
    (root / "urgent" / "a.pdf").write_bytes(letter)
    assert w.scan_once() == 0, "a file seen for the first time may still be being written"
    assert w.scan_once() == 1
    [item] = raw_items(bus)
    assert item.channel == "scan" and item.metadata == {"team": "claims", "doc_type": "claim_form", "queue": "urgent"}
    assert item.idempotency_key == f"scan:sha256:{item.blob_sha256}"
    assert list((root / ".done").iterdir())

    (root / "again.pdf").write_bytes(letter)
    w.scan_once()
    w.scan_once()
    assert len(raw_items(bus)) == 1, "the same bytes dropped again are not published again"
    assert w.received == 1 and registry.health()["mailroom"]["duplicates"] == 1


def test_marker_file_says_when_a_file_is_complete(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                  registry: Registry) -> None:
    root = tmp_path / "scans"
    cfg = WatchedFolder(path=str(root), completion="marker", marker_suffix=".ok", watch="poll")
    w = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    (root / "b.tif").write_bytes(tiff_of([page("x")]))
    assert w.scan_once() == 0 and w.scan_once() == 0
    (root / "b.tif.ok").write_text("")
    assert w.scan_once() == 1
    assert not (root / "b.tif.ok").exists()
    assert [i.channel for i in raw_items(bus)] == ["scan"]


def test_blank_separator_pages_split_a_pdf_and_a_tiff_batch(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                            registry: Registry) -> None:
    root = tmp_path / "batch"
    cfg = WatchedFolder(path=str(root), split="blank", stable_s=0.0, watch="poll")
    w = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    (root / "batch.pdf").write_bytes(pdf_of([page("one"), page("one b"), page(None), page("two"), page(None)]))
    (root / "fax.tiff").write_bytes(tiff_of([page("a"), page(None), page("b"), page("c")]))
    w.scan_once()
    w.scan_once()
    items = raw_items(bus)
    by_file = sorted((i.filename or "", i.metadata["batch_pages"]) for i in items)
    assert by_file == [("batch-p1-2.pdf", "1,2"), ("batch-p4-4.pdf", "4"), ("fax-p1-1.tiff", "1"),
                       ("fax-p3-4.tiff", "3,4")]
    two = next(i for i in items if i.filename == "batch-p1-2.pdf")
    assert len(pdfium.PdfDocument(blobs.read(two.blob_sha256))) == 2
    assert two.idempotency_key.startswith("scan:batch:") and two.idempotency_key.endswith(":pages:1-2")
    with Image.open(blobs.path(next(i for i in items if i.filename == "fax-p3-4.tiff").blob_sha256)) as tif:
        assert getattr(tif, "n_frames", 1) == 2 and tif.info.get("compression") == "group4"


def test_bad_file_goes_to_failed_and_the_rest_flows(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore,
                                                    registry: Registry) -> None:
    root = tmp_path / "batch"
    cfg = WatchedFolder(path=str(root), split="blank", stable_s=0.0, watch="poll")
    w = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (root / "fine.txt").write_text("hello")
    w.scan_once()
    w.scan_once()
    assert [i.filename for i in raw_items(bus)] == ["fine.txt"]
    errors = list((root / ".failed").glob("*.error.txt"))
    assert errors and "separator" in errors[0].read_text()
    assert w.failed == 1 and w.received == 1


def test_foundation_constructor_runs_on_file_events(tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore) -> None:
    stop = threading.Event()
    w = FolderWatcher(tmp_path / "drop", bus=bus, blobs=blobs, poll_s=0.2, stop=stop)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        time.sleep(0.2)
        (tmp_path / "drop" / "mail.eml").write_bytes(b"From: a@b.c\r\nMessage-ID: <x1@b.c>\r\nSubject: hi\r\n\r\nbody")
        wait_until(lambda: w.received == 1, what="the drop folder to take the email")
        assert w.watching == "events"
        [item] = raw_items(bus)
        assert item.channel == "email" and item.idempotency_key == "email:msgid:x1@b.c"
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()


def barcode_page(text: str) -> Image.Image:
    zxingcpp = pytest.importorskip("zxingcpp")
    code = memoryview(zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128).to_image(scale=4))
    img = Image.new("L", (850, 1100), 255)
    height, width = code.shape or (0, 0)
    img.paste(Image.frombytes("L", (width, height), code.tobytes()), (100, 400))
    return img


def test_barcode_separator_pages_split_a_batch_and_blank_backs_stay(tmp_path: Path, bus: SqliteBus,
                                                                    blobs: FileBlobStore, registry: Registry) -> None:
    root = tmp_path / "batch"
    cfg = WatchedFolder(path=str(root), split="barcode", stable_s=0.0, watch="poll")
    w = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    pages = [page("first"), page(None), barcode_page("PATCHT"), page("second"), barcode_page("OTHER")]
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=100)
    (root / "duplex.pdf").write_bytes(buf.getvalue())
    w.scan_once()
    w.scan_once()
    assert sorted(i.metadata["batch_pages"] for i in raw_items(bus)) == ["1,2", "4,5"]


def test_a_full_disk_leaves_the_files_in_place_and_they_are_taken_when_space_returns(
        tmp_path: Path, bus: SqliteBus, registry: Registry, small_fs: Path,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15.7: intake pauses on a full disk (blobs on a real, full tmpfs): no file is moved to
    .failed as if it were bad, the log says it once, and the next scan after space returns takes all."""
    root = tmp_path / "drop"
    blobs = FileBlobStore(small_fs / "blobs")
    cfg = WatchedFolder(path=str(root), stable_s=0.0, watch="poll")
    w = FolderWatcher(root, bus=bus, blobs=blobs, config=cfg, registry=registry)
    for n in range(3):
        (root / f"{n}.txt").write_text(f"note {n}")
    filler = fill(small_fs, 0)
    for _ in range(4):
        w._scan_safely()
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == ["0.txt", "1.txt", "2.txt"]
    assert not any((root / ".failed").iterdir())
    assert raw_items(bus) == []
    assert sum("taking nothing" in r.getMessage() for r in caplog.records) == 1
    filler.unlink()
    w._scan_safely()
    w._scan_safely()
    assert sorted(i.filename or "" for i in raw_items(bus)) == ["0.txt", "1.txt", "2.txt"]
    assert not any(p.is_file() for p in root.iterdir())
