"""The blob store on S3-compatible storage (AWS S3, MinIO, Ceph RGW, Garage): the production
adapter of ``ingest.blobs.BlobStore``, chosen with ``CASEWORK_BLOBS__URL=s3://bucket/prefix``.

- Keys are the file store's paths: ``prefix/ab/cd/<sha256>``, so a file store moves to a bucket
  with ``aws s3 sync DATA_DIR/blobs s3://bucket/prefix --exclude 'tmp/*'`` and nothing else.
- Content-addressed and idempotent: the key is the content's sha256, and a blob whose key exists
  is not written again (a HEAD first, so a versioned bucket keeps one version). Two processes
  putting the same new content at the same moment both write the same bytes: still one object.
- Atomic: S3 shows an object only once its PUT (or its multipart upload) has completed, so a
  reader never sees half a blob; a failed upload leaves nothing under the key (boto3 aborts the
  multipart upload; for a process killed mid-upload, give the bucket a lifecycle rule that
  aborts incomplete multipart uploads after a day).
- Bounded memory: a stream is hashed while it is spooled to a temporary file (in memory up to one
  MiB, then on disk in TMPDIR), and anything larger than one part is uploaded as a multipart
  upload of ``multipart_chunk_bytes`` parts with at most ``max_concurrency`` in flight: an upload
  holds about ``max_concurrency + 2`` parts in memory whatever the blob's size.
- Errors: a missing key is ``BlobNotFound``; an unreachable endpoint, a missing bucket, refused
  credentials, throttling or a server error is ``BlobStoreUnavailable`` (an outage: the workers
  wait and retry, never dead-letter); any other refusal is ``BlobStoreRefused``.

Client checksums: boto3 sends CRC checksums by default; an older S3-compatible server that
refuses them needs ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required`` in the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ingest.blobs import BlobRef, S3Options, is_sha256
from ingest.errors import BlobNotFound, BlobStoreRefused, BlobStoreUnavailable

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_CREDENTIALS = frozenset({"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                          "InvalidToken", "AllAccessDisabled"})
_BUSY = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed"})


def make_client(options: S3Options) -> Any:
    """A boto3 S3 client for ``options`` (thread-safe: one per store, shared by its upload threads)."""
    style = options.addressing_style or ("path" if options.endpoint_url else "auto")
    config = Config(
        s3={"addressing_style": style},
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        connect_timeout=options.connect_timeout_s,
        read_timeout=options.read_timeout_s,
        max_pool_connections=max(10, 2 * options.max_concurrency),
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=options.endpoint_url or None,
        region_name=options.region or None,
        aws_access_key_id=options.access_key_id or None,
        aws_secret_access_key=options.secret_access_key or None,
        config=config,
    )


class S3BlobStore:
    """Blobs as objects ``prefix/ab/cd/<sha256>`` in one bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, options: S3Options | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.options = options or S3Options()
        chunk = max(5 << 20, self.options.multipart_chunk_bytes)  # S3's smallest part but the last
        self._part = chunk
        self._transfer = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk,
                                        max_concurrency=self.options.max_concurrency,
                                        max_io_queue=self.options.max_concurrency)
        # s3transfer copies each part of an open file into memory, up to 10 parts by default: as many as
        # are in flight is enough, so a blob's upload holds at most max_concurrency parts.
        self._transfer.max_in_memory_upload_chunks = self.options.max_concurrency

    @classmethod
    def from_url(cls, url: str, *, options: S3Options) -> S3BlobStore:
        """``s3://bucket[/prefix]``; checks at once that the bucket is there and answers."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"blobs.url {url!r}: write s3://bucket or s3://bucket/prefix")
        store = cls(make_client(options), parts.netloc, parts.path, options=options)
        store.check()
        return store

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    def key(self, sha256: str) -> str:
        if not is_sha256(sha256):
            raise BlobNotFound(f"not a sha256 hex digest: {sha256!r}")
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def check(self) -> None:
        """Raise ``BlobStoreUnavailable`` (saying what to fix) unless the bucket answers."""
        with self._translate(f"bucket {self.bucket}", bucket_op=True):
            self.client.head_bucket(Bucket=self.bucket)

    def put(self, data: bytes | BinaryIO) -> BlobRef:
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            ref = BlobRef(hashlib.sha256(body).hexdigest(), len(body))
            self._store(ref, io.BytesIO(body))
            return ref
        # Hash while spooling (memory up to 1 MiB, then a temp file): the key is known before the upload.
        with tempfile.SpooledTemporaryFile(max_size=_CHUNK) as spool:
            digest = hashlib.sha256()
            size = 0
            while chunk := data.read(_CHUNK):
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            ref = BlobRef(digest.hexdigest(), size)
            spool.seek(0)
            self._store(ref, cast(BinaryIO, spool))
        return ref

    def put_many(self, datas: Sequence[bytes]) -> list[BlobRef]:
        """Store several blobs, ``max_concurrency`` uploads at a time, each new content once."""
        refs = [BlobRef(hashlib.sha256(d).hexdigest(), len(d)) for d in datas]
        unique = {ref.sha256: (ref, d) for ref, d in zip(refs, datas, strict=True)}
        if len(unique) < 2:
            for ref, d in unique.values():
                self._store(ref, io.BytesIO(d))
            return refs
        with ThreadPoolExecutor(max_workers=min(self.options.max_concurrency, len(unique)),
                                thread_name_prefix="s3-put") as pool:
            list(pool.map(lambda pair: self._store(pair[0], io.BytesIO(pair[1])), unique.values()))
        return refs

    def open(self, sha256: str) -> BinaryIO:
        """A stream of the blob (read it to the end or close it; it is not seekable)."""
        key = self.key(sha256)
        with self._translate(sha256):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return cast(BinaryIO, body)

    def read(self, sha256: str) -> bytes:
        with self._translate(sha256), contextlib.closing(self.open(sha256)) as body:
            return body.read()

    def exists(self, sha256: str) -> bool:
        key = self.key(sha256)
        try:
            with self._translate(sha256):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except BlobNotFound:
            return False
        return True

    def _store(self, ref: BlobRef, body: BinaryIO) -> None:
        if self.exists(ref.sha256):  # stored already: no write (and no second version)
            return
        key = self.key(ref.sha256)
        with self._translate(ref.sha256):
            if ref.size <= self._part:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
            else:
                self.client.upload_fileobj(body, self.bucket, key, Config=self._transfer)
        log.debug("blob %s (%d bytes) stored in s3://%s/%s", ref.sha256, ref.size, self.bucket, key)

    @contextlib.contextmanager
    def _translate(self, what: str, *, bucket_op: bool = False) -> Iterator[None]:
        """S3 and network errors into the ingest error contract, each saying what to do next."""
        where = f"s3://{self.bucket}/{self.prefix} at {self.options.endpoint_url or 'AWS'}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "NoSuchBucket" or (bucket_op and code in _MISSING):
                raise BlobStoreUnavailable(
                    f"the bucket {self.bucket!r} does not exist at {self.options.endpoint_url or 'AWS'}: create it "
                    "(aws s3 mb s3://BUCKET) or fix CASEWORK_BLOBS__URL / CASEWORK_BLOBS__ENDPOINT_URL") from exc
            if code in _MISSING:
                raise BlobNotFound(f"blob {what} is not in {where}: the bucket may have been emptied or a "
                                   "lifecycle rule expired it") from None
            if code in _CREDENTIALS or status == 403:
                raise BlobStoreUnavailable(
                    f"{where} refused the credentials ({code}): check CASEWORK_BLOBS__ACCESS_KEY_ID / "
                    "SECRET_ACCESS_KEY (or the AWS_* variables, the instance role) and the bucket policy") from exc
            if code in _BUSY or status >= 500 or status == 0:
                raise BlobStoreUnavailable(f"{where} did not store or return {what} ({code or status}): "
                                           "retrying; check the object store's health") from exc
            raise BlobStoreRefused(f"{where} refused {what}: {code}: {error.get('Message', '')}") from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"{where} is not reachable ({type(exc).__name__}: {exc}): retrying; "
                                       "check CASEWORK_BLOBS__ENDPOINT_URL and the network") from exc
