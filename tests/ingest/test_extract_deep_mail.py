"""Mail nested far deeper than max_depth, in message/rfc822 or in multipart, gets the depth limit's reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.extract import ExtractLimits, extract


def nested(depth: int, kind: str) -> bytes:
    body = b"From: a@example.com\nSubject: innermost\nContent-Type: text/plain\n\nhello from the bottom\n"
    for n in range(depth):
        if kind == "rfc822":
            body = b"From: a@example.com\nSubject: level %d\nContent-Type: message/rfc822\n\n" % n + body
        else:
            boundary = b"b%d" % n
            body = (b'From: a@example.com\nSubject: level %d\nContent-Type: multipart/mixed; boundary="%s"\n\n--%s\n'
                    % (n, boundary, boundary) + body + b"\n--%s--\n" % boundary)
    return body


@pytest.mark.parametrize("kind", ["rfc822", "multipart"])
@pytest.mark.parametrize("depth", [400, 1500])
def test_mail_nested_hundreds_deep_is_read_to_max_depth(tmp_path: Path, kind: str, depth: int) -> None:
    result = extract(nested(depth, kind), filename="deep.eml", content_type=None,
                     blobs=FileBlobStore(tmp_path / "blobs"), limits=ExtractLimits())
    errors = [p.error or "" for p in result.parts]
    assert any("nested more than 8 levels deep" in e for e in errors), errors
    assert result.email is not None and result.email.subject == f"level {depth - 1}"
