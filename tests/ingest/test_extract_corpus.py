"""extract() over every real file in the shared corpus: each one is read, or refused with a reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.errors import BadInput
from ingest.extract import ExtractLimits, extract

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
FOLDERS = ("email", "pdf", "xml", "html", "csv")
FILES = sorted(p for folder in FOLDERS if (CORPUS / folder).is_dir() for p in (CORPUS / folder).iterdir())

# Refused as a whole, with the words the reason must contain.
REFUSED = {
    "pdfplumber__empty_zero_bytes.pdf": "empty file (0 bytes)",
    "pdfplumber__password_protected.pdf": "encrypted",
}
# Read, but no text comes out yet (the reason is in Part.error).
NOT_YET_READABLE: dict[str, str] = {}

pytestmark = pytest.mark.skipif(not FILES, reason=f"corpus not found at {CORPUS}")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")  # per test: cheap, and the tests can spread over xdist workers


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_every_corpus_file_is_read_or_refused_with_a_reason(path: Path, blobs: FileBlobStore) -> None:
    data = path.read_bytes()
    if path.name in REFUSED:
        with pytest.raises(BadInput, match=re.escape(REFUSED[path.name])):
            extract(data, filename=path.name, content_type=None, blobs=blobs, limits=ExtractLimits())
        return
    result = extract(data, filename=path.name, content_type=None, blobs=blobs, limits=ExtractLimits())
    assert result.parts, "no parts"
    assert [p.index for p in result.parts] == list(range(len(result.parts)))
    for part in result.parts:
        assert part.text.strip() or part.error, f"part {part.index} has neither text nor error"
        if part.blob_sha256:
            with blobs.open(part.blob_sha256) as stored:
                assert stored.read(1) is not None
    if path.name in NOT_YET_READABLE:
        assert NOT_YET_READABLE[path.name] in (result.parts[0].error or "")
        return
    assert any(p.text.strip() for p in result.parts), [p.error for p in result.parts]
    if path.parent.name == "email":
        assert result.email is not None
        assert result.parts[0].kind == "body"
