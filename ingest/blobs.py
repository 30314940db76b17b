"""Content-addressed blob store: a file is stored once, by its sha256, however often it arrives.

The port (``BlobStore``) has two adapters: ``FileBlobStore`` here (the embedded default, files
under DATA_DIR/blobs or a shared volume) and ``S3BlobStore`` in ``ingest.s3_blobs`` (AWS S3,
MinIO, Ceph, Garage), chosen by ``open_blob_store`` from a URL.  Both are held to one contract
suite (tests/ingest/test_blobs.py).

File store: writes are atomic (temp file in the same directory, fsync, rename), so a reader never sees a
half-written blob and a crash leaves at most a stray temp file.  ``put_many`` writes a batch with
one file-system sync (syncfs) before the renames and one after, instead of an fsync per file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from ingest.errors import BlobNotFound, DiskFull, is_disk_full
from ingest.faults import fault_point

_CHUNK = 1 << 20


def _find_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2): one sync of the blob store's file system for a whole batch (Linux).  It
    reports write-back errors from Linux 5.8 on; older kernels return 0 even after an I/O error."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _find_syncfs()


@dataclass(frozen=True, slots=True)
class BlobRef:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class S3Options:
    """How to reach an S3-compatible store.  Empty credentials and region: boto3's own chain
    (AWS_* variables, a profile, the instance's role).  ``addressing_style`` "" means path-style
    when an endpoint is given (MinIO, Ceph, Garage, moto) and boto3's choice otherwise."""

    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    addressing_style: str = ""
    multipart_chunk_bytes: int = 8 << 20
    max_concurrency: int = 4
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_attempts: int = 5


class BlobStore(Protocol):
    """Store bytes once by their sha256; read them back by it.  ``open`` raises ``BlobNotFound`` for
    an unknown or malformed id; a store that is down raises an ``outage`` error (retried, never
    dead-lettered)."""

    def put(self, data: bytes | BinaryIO) -> BlobRef: ...

    def put_many(self, datas: Sequence[bytes]) -> list[BlobRef]: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def read(self, sha256: str) -> bytes: ...


_HEX = frozenset("0123456789abcdef")


def is_sha256(value: str) -> bool:
    return len(value) == 64 and _HEX.issuperset(value)


def open_blob_store(url: str, *, data_dir: Path, s3: S3Options | None = None) -> BlobStore:
    """The blob store a URL names: empty or ``file:`` (DATA_DIR/blobs), ``file:///abs/path``, or
    ``s3://bucket[/prefix]`` (endpoint, region and credentials in ``s3``; boto3 is imported only then)."""
    if url in ("", "file:"):
        return FileBlobStore(data_dir / "blobs")
    if url.startswith("file://"):
        return FileBlobStore(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        from ingest.s3_blobs import S3BlobStore

        return S3BlobStore.from_url(url, options=s3 or S3Options())
    raise ValueError(f"blobs.url {url!r}: use file: (the data directory), file:///abs/path or s3://bucket/prefix")


class FileBlobStore:
    """Blobs as files under ``root/ab/cd/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise BlobNotFound(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes | BinaryIO) -> BlobRef:
        with self._space():
            ref = self._put(data)
        fault_point("after_blob_write")
        return ref

    @contextlib.contextmanager
    def _space(self) -> Iterator[None]:
        """ENOSPC/EDQUOT become ``DiskFull`` naming this store's folder (the temp files are removed)."""
        try:
            yield
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(str(self.root), f"could not store a blob ({exc.strerror or exc})") from exc
            raise

    def _put(self, data: bytes | BinaryIO) -> BlobRef:
        if isinstance(data, bytes | bytearray | memoryview):
            ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data))
            if self.path(ref.sha256).exists():  # stored already: no write, no fsync
                return ref
        digest = hashlib.sha256()
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    chunk = bytes(data)
                    digest.update(chunk)
                    out.write(chunk)
                    size = len(chunk)
                else:
                    while chunk := data.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            ref = BlobRef(digest.hexdigest(), size)
            final = self.path(ref.sha256)
            if final.exists():
                os.unlink(tmp_name)
                return ref
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            return ref
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def put_many(self, datas: Sequence[bytes]) -> list[BlobRef]:
        """Store several blobs with one file-system sync for the lot instead of an fsync each: the
        fast path for a batch (``casework ingest`` of a folder).  Durable when it returns, as ``put``.
        Where ``syncfs`` is missing (not Linux) it falls back to ``put`` one by one."""
        if _syncfs is None or len(datas) < 2:
            return [self.put(d) for d in datas]
        with self._space():
            refs = self._put_many(datas)
        fault_point("after_blob_write")
        return refs

    def _put_many(self, datas: Sequence[bytes]) -> list[BlobRef]:
        refs = [BlobRef(hashlib.sha256(d).hexdigest(), len(d)) for d in datas]
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        root = os.fspath(self.root)
        # Names as strings and each folder made once: pathlib's joins and a mkdir per blob were a
        # third of `casework ingest`'s own CPU per file (the digests are ours, no need to check them).
        def final_name(sha256: str) -> str:
            return f"{root}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

        pending: dict[str, str] = {}  # sha256 -> temp file, each new content once
        try:
            for ref, data in zip(refs, datas, strict=True):
                if ref.sha256 in pending or os.path.exists(final_name(ref.sha256)):
                    continue
                fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
                pending[ref.sha256] = tmp_name
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            if pending:
                self._sync(tmp_dir)  # contents durable before any becomes visible under its name
                folders: set[str] = set()
                for sha256, tmp_name in pending.items():
                    final = final_name(sha256)
                    folder = os.path.dirname(final)
                    if folder not in folders:
                        os.makedirs(folder, exist_ok=True)
                        folders.add(folder)
                    os.replace(tmp_name, final)
                pending.clear()
            # The names, before the caller publishes them; also when every blob was there already:
            # another process may have renamed one a moment ago and not synced yet.
            self._sync(tmp_dir)
        finally:
            for tmp_name in pending.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
        return refs

    @staticmethod
    def _sync(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _syncfs is not None and _syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs failed: {os.strerror(err)}", str(folder))
        finally:
            os.close(fd)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob {sha256} is not in {self.root}: the data directory may have been moved or pruned"
            ) from None

    def read(self, sha256: str) -> bytes:
        with self.open(sha256) as f:
            return f.read()
