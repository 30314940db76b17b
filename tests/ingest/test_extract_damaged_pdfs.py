"""Damaged PDFs (issue 11.7): every page that can be read is kept, the others are named, the reason
says what is wrong, and the same file always gets the same outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.blobs import FileBlobStore
from ingest.errors import BadInput
from ingest.extract import Extraction, ExtractLimits, extract
from ingest.extract.pdf_child import pdf_child
from tests.ingest.damaged_pdfs import corrupt_xref, letter, tiny_bogus_count, truncated

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/pdf")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def read(data: bytes, blobs: FileBlobStore, **limits: object) -> Extraction:
    return extract(data, filename="damaged.pdf", content_type=None, blobs=blobs,
                   limits=ExtractLimits.model_validate({"ocr_enabled": False, **limits}))


def pages_of(result: Extraction) -> list[str]:
    return result.parts[0].text.split("\f")


def test_a_tiny_pdf_claiming_2_31_pages_gives_its_one_page_and_says_what_it_claims(blobs: FileBlobStore) -> None:
    data = tiny_bogus_count()
    assert len(data) < 500
    result = read(data, blobs)
    assert "Page 1 of the letter" in result.parts[0].text
    assert "PDF claims 2,147,483,648 pages; read 1" in result.warnings
    assert result.parts[0].fields["pages"] == 1


def test_a_count_over_max_pdf_pages_that_the_tree_does_not_hold_is_read_not_refused(blobs: FileBlobStore) -> None:
    result = read(letter(2, count=1_000_000), blobs)
    assert [p[:6] for p in pages_of(result)] == ["Page 1", "Page 2"]
    assert "PDF claims 1,000,000 pages; read 2" in result.warnings
    assert result.parts[0].fields["pages_claimed"] == 1_000_000


def test_a_pdf_that_really_has_more_pages_than_the_limit_is_still_refused(blobs: FileBlobStore) -> None:
    with pytest.raises(BadInput, match="PDF has 4 pages, over the limit of 3"):
        read(letter(4), blobs, max_pdf_pages=3)


def test_kids_that_point_nowhere_keep_the_pages_that_load_and_name_the_rest(blobs: FileBlobStore) -> None:
    result = read(letter(2, count=5, extra_kids=b" 99 0 R 98 0 R 97 0 R"), blobs)
    assert [p[:6] for p in pages_of(result)[:2]] == ["Page 1", "Page 2"]
    assert "PDF page tree damaged: pages 3-5 of 5 unreadable" in result.warnings
    assert result.parts[0].fields["pages_unreadable"] == [3, 4, 5]
    assert result.parts[0].error is None


def test_a_kid_that_is_not_a_page_is_named_and_the_pages_after_it_are_kept(blobs: FileBlobStore) -> None:
    result = read(letter(5, broken=(2,)), blobs)
    texts = pages_of(result)
    assert "Page 1 of" in texts[0] and "Page 5 of" in texts[-1]
    assert not any("Page 2 of" in t for t in texts)
    assert any("2" in w for w in result.warnings)


def test_a_page_tree_with_no_loadable_page_fails_with_a_reason_that_names_it(blobs: FileBlobStore) -> None:
    data = letter(1, count=3, extra_kids=b" 99 0 R 98 0 R").replace(b"[4 0 R ", b"[97 0 R ")
    with pytest.raises(BadInput, match=r"pages 1-3 of 3 unreadable: no page of it can be read"):
        read(data, blobs)


def test_a_broken_cross_reference_table_is_rebuilt_and_every_page_read(blobs: FileBlobStore) -> None:
    result = read(corrupt_xref(letter(3)), blobs)
    assert [p[:6] for p in pages_of(result)] == ["Page 1", "Page 2", "Page 3"]
    assert not [w for w in result.warnings if "PDF" in w]


def test_a_file_cut_short_says_so(blobs: FileBlobStore) -> None:
    with pytest.raises(BadInput, match=r"cut short .* ask the sender to send it again"):
        read(truncated(letter(3), 400), blobs)


@pytest.mark.parametrize("make", [tiny_bogus_count, lambda: letter(2, count=5, extra_kids=b" 99 0 R 98 0 R 97 0 R"),
                                  lambda: truncated(letter(3), 400)])
def test_the_same_damaged_file_gets_the_same_outcome_every_time(blobs: FileBlobStore, make: object) -> None:
    data = make()  # type: ignore[operator]
    outcomes = []
    for attempt in range(3):
        if attempt == 2:
            pdf_child(ExtractLimits().pdf_memory_mb).close()  # a fresh PDF reader child too
        try:
            result = read(data, blobs)
            outcomes.append((result.parts[0].text, tuple(result.warnings), result.parts[0].error))
        except BadInput as exc:
            outcomes.append((type(exc).__name__, str(exc), None))
    assert outcomes[0] == outcomes[1] == outcomes[2]


@pytest.mark.parametrize(("name", "expected"), [
    ("mustang__corrupted_xref_invoice.pdf", "Rechnung"),
    ("pdfplumber__malformed.pdf", None),
])
def test_damaged_pdfs_of_the_corpus_are_read(blobs: FileBlobStore, name: str, expected: str | None) -> None:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not found")
    result = read(path.read_bytes(), blobs)
    assert result.parts[0].text.strip()
    if expected:
        assert expected in result.parts[0].text
