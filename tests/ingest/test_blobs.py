"""The blob store contract: one suite, run against the file store and against an S3 bucket on a
real local S3 endpoint (moto_server). The tests at the end cover what only one adapter has to get
right itself (no rewrite of a stored file; S3 multipart streaming with bounded memory, versions,
errors that say what to fix, configuration)."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from api.settings import Settings
from api.wiring import open_runtime
from ingest.blobs import BlobStore, FileBlobStore, S3Options, open_blob_store
from ingest.errors import BlobNotFound, BlobStoreUnavailable
from ingest.s3_blobs import S3BlobStore, make_client
from tests.s3_server import S3_TEST_KEYS


def s3_options(endpoint: str, **overrides: Any) -> S3Options:
    return S3Options(endpoint_url=endpoint, region=S3_TEST_KEYS["region"],
                     access_key_id=S3_TEST_KEYS["access_key_id"],
                     secret_access_key=S3_TEST_KEYS["secret_access_key"], **overrides)


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=S3_TEST_KEYS["region"],
                        aws_access_key_id=S3_TEST_KEYS["access_key_id"],
                        aws_secret_access_key=S3_TEST_KEYS["secret_access_key"])


def bucket_keys(endpoint: str, bucket: str) -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@dataclass
class Kind:
    name: str
    store: BlobStore
    stored: Callable[[], list[str]]  # everything the store holds (temp files and stray objects too)
    location: Callable[[str], str]  # where a blob of this sha256 belongs


@pytest.fixture(params=["file", "s3"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    if request.param == "file":
        root = tmp_path / "blobs"
        files = FileBlobStore(root)
        yield Kind("file", files, lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
                   lambda sha: str(files.path(sha).relative_to(root)))
        return
    endpoint: str = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    store = S3BlobStore.from_url(f"s3://{bucket}/docs", options=s3_options(endpoint))
    yield Kind("s3", store, lambda: bucket_keys(endpoint, bucket), store.key)


def test_content_addressed_and_stored_once(kind: Kind) -> None:
    data = b"hello casework" * 1000
    a = kind.store.put(data)
    b = kind.store.put(io.BytesIO(data))
    assert a == b and a.sha256 == hashlib.sha256(data).hexdigest() and a.size == len(data)
    assert kind.stored() == [kind.location(a.sha256)], "one object however often it arrives, nothing else"
    assert kind.store.read(a.sha256) == data
    with kind.store.open(a.sha256) as f:
        assert f.read() == data


def test_missing_and_malformed_ids(kind: Kind) -> None:
    with pytest.raises(BlobNotFound, match="not in"):
        kind.store.open("0" * 64)
    with pytest.raises(BlobNotFound, match="not in"):
        kind.store.read("0" * 64)
    with pytest.raises(BlobNotFound, match="sha256"):
        kind.store.open("../../etc/passwd")


def test_failed_write_leaves_nothing(kind: Kind) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("disk went away")

    with pytest.raises(OSError):
        kind.store.put(Broken())  # type: ignore[arg-type]
    assert kind.stored() == []


def test_put_many_stores_each_content_once_with_the_refs_put_gives(kind: Kind, tmp_path: Path) -> None:
    earlier = kind.store.put(b"already here")
    datas = [b"one", b"two", b"one", b"already here", b""]
    refs = kind.store.put_many(datas)
    assert refs == [FileBlobStore(tmp_path / "other").put(d) for d in datas]
    assert refs[3] == earlier
    for ref, data in zip(refs, datas, strict=True):
        assert kind.store.read(ref.sha256) == data
    assert kind.stored() == sorted({kind.location(r.sha256) for r in refs}), "no temp files, no second copies"


def test_an_empty_blob_and_a_stream_in_small_reads(kind: Kind) -> None:
    assert kind.store.put(b"").size == 0 and kind.store.read(hashlib.sha256(b"").hexdigest()) == b""

    class Trickle(io.RawIOBase):  # a socket-like stream: a few bytes per read
        def __init__(self, data: bytes) -> None:
            self.left = data

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            chunk, self.left = self.left[:7], self.left[7:]
            return chunk

    data = bytes(range(256)) * 40
    ref = kind.store.put(Trickle(data))  # type: ignore[arg-type]
    assert ref.size == len(data) and kind.store.read(ref.sha256) == data


# --- file store only ---------------------------------------------------------------------------

def test_file_put_skips_the_write_when_the_content_is_stored(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    ref = store.put(b"same")
    store.path(ref.sha256).chmod(0o444)
    before = store.path(ref.sha256).stat().st_mtime_ns
    assert store.put(b"same") == ref and store.path(ref.sha256).stat().st_mtime_ns == before


# --- S3 only -----------------------------------------------------------------------------------

def test_s3_stores_a_blob_once_in_a_versioned_bucket(s3_server: str, s3_bucket: str) -> None:
    """Idempotent means no second write: a versioned bucket (a common S3 setting) keeps one version."""
    client = s3_client(s3_server)
    client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    store = S3BlobStore.from_url(f"s3://{s3_bucket}", options=s3_options(s3_server))
    ref = store.put(b"same bytes")
    store.put(io.BytesIO(b"same bytes"))
    store.put_many([b"same bytes", b"same bytes", b"other"])
    versions = client.list_object_versions(Bucket=s3_bucket, Prefix=store.key(ref.sha256))["Versions"]
    assert len(versions) == 1
    assert store.key(ref.sha256) == f"{ref.sha256[:2]}/{ref.sha256[2:4]}/{ref.sha256}", "the file store's layout"


class Generated(io.RawIOBase):
    """``size`` bytes made up as they are read (never held whole), hashed on the way."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.digest = hashlib.sha256()
        self.counter = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        chunk = hashlib.sha256(str(self.counter).encode()).digest() * (n // 32 + 1)
        chunk = chunk[:n]
        self.counter += 1
        self.left -= n
        self.digest.update(chunk)
        return chunk


def test_s3_streams_a_big_blob_in_parts_with_bounded_memory(s3_server: str, s3_bucket: str) -> None:
    """48 MiB through a store with 5 MiB parts, 2 at a time: a multipart upload (the ETag says how
    many parts), and the Python heap holds at most max_concurrency + 2 parts whatever the blob's size
    (measured: 12.3 MiB with 1 upload at a time, 18.4 MiB with 2, for 48 and for 96 MiB)."""
    size, part = 48 << 20, 5 << 20
    store = S3BlobStore.from_url(f"s3://{s3_bucket}/big",
                                 options=s3_options(s3_server, multipart_chunk_bytes=part, max_concurrency=2))
    source = Generated(size)
    tracemalloc.start()
    try:
        ref = store.put(source)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == size and ref.sha256 == source.digest.hexdigest()
    assert peak < (2 + 2) * part, f"peak Python memory {peak / 2**20:.1f} MiB for a {size >> 20} MiB blob"
    head = s3_client(s3_server).head_object(Bucket=s3_bucket, Key=store.key(ref.sha256))
    assert head["ContentLength"] == size and head["ETag"].strip('"').endswith(f"-{-(-size // part)}")
    digest = hashlib.sha256()
    with store.open(ref.sha256) as body:
        while chunk := body.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == ref.sha256


def test_s3_outages_are_retryable_and_say_what_to_fix(s3_server: str, s3_bucket: str) -> None:
    with pytest.raises(BlobStoreUnavailable, match=r"does not exist.*create it") as missing:
        S3BlobStore.from_url("s3://no-such-bucket-here", options=s3_options(s3_server))
    assert missing.value.outage and missing.value.retryable, "a missing bucket must not dead-letter items"
    # nothing listens on the port of a closed socket: connection refused, retried as an outage
    dead = "http://127.0.0.1:9"
    store = S3BlobStore(make_client(s3_options(dead, max_attempts=1, connect_timeout_s=1)), s3_bucket,
                        options=s3_options(dead))
    with pytest.raises(BlobStoreUnavailable, match=r"not reachable.*ENDPOINT_URL") as down:
        store.put(b"x")
    assert down.value.outage and down.value.http_status == 503


def test_the_blob_store_is_chosen_by_configuration(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    assert isinstance(open_blob_store("", data_dir=tmp_path), FileBlobStore)
    assert open_blob_store("file:", data_dir=tmp_path).put(b"a") == FileBlobStore(tmp_path / "blobs").put(b"a")
    elsewhere = open_blob_store(f"file://{tmp_path / 'shared'}", data_dir=tmp_path)
    assert isinstance(elsewhere, FileBlobStore) and elsewhere.root == tmp_path / "shared"
    with pytest.raises(ValueError, match="s3://bucket"):
        open_blob_store("ftp://x", data_dir=tmp_path)

    settings = Settings(data_dir=tmp_path / "data", blobs={  # type: ignore[arg-type]
        "url": f"s3://{s3_bucket}/prod/", "endpoint_url": s3_server, "region": S3_TEST_KEYS["region"],
        "access_key_id": S3_TEST_KEYS["access_key_id"], "secret_access_key": S3_TEST_KEYS["secret_access_key"]})
    assert "casework-test-secret" not in repr(settings.blobs)
    rt = open_runtime(settings)
    try:
        assert isinstance(rt.blobs, S3BlobStore)
        ref = rt.blobs.put(b"through the runtime")
    finally:
        rt.close()
    assert bucket_keys(s3_server, s3_bucket) == [f"prod/{ref.sha256[:2]}/{ref.sha256[2:4]}/{ref.sha256}"]
    assert not (tmp_path / "data" / "blobs").exists(), "nothing written to the data directory's file store"
