import hashlib
import io
from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.errors import BlobNotFound


def test_content_addressed_and_stored_once(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    data = b"hello casework" * 1000
    a = store.put(data)
    b = store.put(io.BytesIO(data))
    assert a == b and a.sha256 == hashlib.sha256(data).hexdigest() and a.size == len(data)
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert files == [store.path(a.sha256)], "one file however often it arrives, no temp files left"
    assert store.read(a.sha256) == data


def test_missing_and_malformed_ids(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(BlobNotFound, match="not in"):
        store.open("0" * 64)
    with pytest.raises(BlobNotFound, match="sha256"):
        store.open("../../etc/passwd")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("disk went away")

    with pytest.raises(OSError):
        store.put(Broken())  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_put_many_stores_each_content_once_with_the_refs_put_gives(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    earlier = store.put(b"already here")
    datas = [b"one", b"two", b"one", b"already here", b""]
    refs = store.put_many(datas)
    assert refs == [FileBlobStore(tmp_path / "other").put(d) for d in datas]
    assert refs[3] == earlier
    for ref, data in zip(refs, datas, strict=True):
        assert store.read(ref.sha256) == data
    files = sorted(p for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    assert files == sorted({store.path(r.sha256) for r in refs}), "no temp files, no second copies"


def test_put_skips_the_write_when_the_content_is_stored(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    ref = store.put(b"same")
    store.path(ref.sha256).chmod(0o444)
    before = store.path(ref.sha256).stat().st_mtime_ns
    assert store.put(b"same") == ref and store.path(ref.sha256).stat().st_mtime_ns == before
