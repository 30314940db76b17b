"""Idempotency keys: the connectors' keys are as they always were (items stored before the upload
namespace existed are still recognised); keys a user supplies through the upload API are theirs alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ingest.blobs import FileBlobStore
from ingest.intake import idempotency_key, make_raw_item, upload_key_namespace

EMAIL = b"From: a@example.com\r\nMessage-ID: <real-1@example.com>\r\n\r\nhello\r\n"


def test_connector_keys_and_item_ids_are_unchanged(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    sha = hashlib.sha256(b"scan").hexdigest()
    cases = [  # (what a connector passes, the key and item id it always had)
        (dict(data=EMAIL, channel="email", source="imap:INBOX"),
         "email:msgid:real-1@example.com", "5cdce569-f6f4-5db3-a91a-b7f6094d3e01"),
        (dict(data=b"hi", channel="sms", source="twilio:SM0123", source_id="SM0123"),
         "sms:SM0123", "d39d4a31-5c5e-595b-b215-8aea21303ad7"),
        (dict(data=b"x", channel="email", source="imap:INBOX", source_id="uid:INBOX;12;7"),
         "email:uid:INBOX;12;7", "71bc5469-5b19-54e1-8511-c55b08574cd8"),
    ]
    for kwargs, key, item_id in cases:
        raw = make_raw_item(blobs=blobs, filename=None, **kwargs)  # type: ignore[arg-type]
        assert (raw.idempotency_key, raw.item_id) == (key, item_id)
    assert idempotency_key("scan", sha, b"scan") == f"scan:sha256:{sha}"


def test_upload_keys_are_namespaced_by_the_uploader(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")

    def upload(user: str, data: bytes, channel: str = "api", source_id: str | None = None) -> tuple[str, str]:
        raw = make_raw_item(blobs=blobs, data=data, channel=channel, filename=None,  # type: ignore[arg-type]
                            source=f"api:{user}", source_id=source_id, key_namespace=upload_key_namespace(user))
        return raw.idempotency_key, raw.item_id

    assert upload("alice", EMAIL, "email")[0] == "api:user:alice:email:msgid:real-1@example.com"
    assert upload("alice", b"x", source_id="INV-1") == upload("alice", b"y", source_id="INV-1"), "re-sends"
    assert upload("alice", b"x", source_id="INV-1") != upload("bob", b"x", source_id="INV-1")
    assert upload("a:b", b"x", source_id="c") != upload("a", b"x", source_id="b:c"), "names cannot run into keys"
    connector = make_raw_item(blobs=blobs, data=b"x", channel="api", filename=None, source="cli")
    assert upload("sha256", b"x", source_id=hashlib.sha256(b"x").hexdigest())[0] != connector.idempotency_key
