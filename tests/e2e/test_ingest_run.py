"""``casework ingest`` in-process (api.ingest_run): what it reports for items with a history."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.ingest_run import CHUNK_FILES, COMMIT_WAIT_S, run_ingest
from api.settings import Settings
from api.wiring import Runtime, open_runtime
from casestore import items
from casestore.models import Document
from ingest.messages import item_id_for

MAIL = (b"From: Newbie <newbie@example.net>\r\nTo: cases@casework.example\r\nSubject: Complaint\r\n"
        b"Message-ID: <again-1@example.net>\r\n\r\nI want to complain about the late parcel.\r\n")


@pytest.fixture
def runtime(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    settings = Settings(data_dir=tmp_path / "data", db={"url": "" if db_url.startswith("sqlite") else db_url},
                        worker={"stage_processes": "threads"})
    rt = open_runtime(settings)
    yield rt
    rt.close()


def test_an_earlier_failure_is_not_reported_for_a_new_attempt(tmp_path: Path, runtime: Runtime) -> None:
    mail = tmp_path / "again.eml"
    mail.write_bytes(MAIL)
    with runtime.sessions() as session, session.begin():  # e.g. dead-lettered while the store was down
        items.record_failure(session, item_id=item_id_for("email:msgid:again-1@example.net"), stage="file",
                             error_class="Unavailable", message="database unreachable", source=str(mail))
    report = run_ingest(runtime, [mail], timeout=120)
    assert [(r.outcome, r.error) for r in report.results] == [("new_case", None)]


def test_a_folder_larger_than_a_chunk_gives_every_file_one_result(tmp_path: Path, runtime: Runtime) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    n = CHUNK_FILES + 5
    for i in range(n):
        # each from a new person of their own: one person's second mail would join their first case
        (inbox / f"{i:03d}.eml").write_bytes(MAIL.replace(b"again-1@", f"m{i}@".encode())
                                             .replace(b"newbie@", f"newbie{i}@".encode()))
    (inbox / "same-as-000.eml").write_bytes((inbox / "000.eml").read_bytes())
    report = run_ingest(runtime, [inbox, tmp_path / "missing.eml"], timeout=300)
    by_name = {Path(r.source).name: r for r in report.results}
    assert len(report.results) == n + 2
    assert by_name["missing.eml"].outcome == "failed" and "cannot read" in (by_name["missing.eml"].error or "")
    assert by_name["same-as-000.eml"].item_id == by_name["000.eml"].item_id
    assert report.counts()["failed"] == 1 and report.counts()["new_case"] == n + 1
    with runtime.read_sessions() as session:
        known = items.outcomes(session, item_ids=[r.item_id for r in report.results if r.item_id])
    assert len(known) == n, "the duplicate file is the same item, filed once"


SCAN = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "scans" / \
    "libtiffnet__CCITT_1_slerexe_business_letter_g4.tif"


@pytest.mark.skipif(not SCAN.is_file(), reason=f"corpus scan not found at {SCAN}")
def test_outcomes_are_looked_for_when_a_stage_commits_not_20_times_a_second(
        tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15.10: the wait for outcomes polled the store every 50 ms, which on a long OCR run cost
    more CPU than the stages' own work. With the stages as threads, a look follows a stage's commit
    (or a second without one)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "scan.tif").write_bytes(SCAN.read_bytes())  # OCR: a second or more
    (inbox / "mail.eml").write_bytes(MAIL)
    real = items.outcomes
    looks = 0

    def counted(session: object, *, item_ids: list[str]) -> dict[str, dict[str, object]]:
        nonlocal looks
        if sys._getframe(1).f_code.co_name == "run_ingest":  # the wait's looks, not the stages' own reads
            looks += 1
        return real(session, item_ids=item_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(items, "outcomes", counted)
    started = time.monotonic()
    report = run_ingest(runtime, [inbox], timeout=300)
    seconds = time.monotonic() - started
    assert all(r.outcome not in (None, "failed") for r in report.results), report.as_dict()
    batches = 3 * len(report.results)  # at most one commit per item and stage
    assert looks <= batches + seconds / COMMIT_WAIT_S + 3, (looks, seconds)


def test_each_item_keeps_the_resolved_path_of_its_file(tmp_path: Path, runtime: Runtime,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders are resolved once per run; a symlinked file still names the file it points to."""
    from sqlalchemy import select

    from casestore.models import Item

    real = tmp_path / "real"
    real.mkdir()
    for name in ("a.eml", "b.eml", "target.eml"):
        (real / name).write_bytes(MAIL.replace(b"again-1@", f"{name}@".encode()))
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "link.eml").symlink_to(real / "target.eml")
    (tmp_path / "outside" / "c.eml").write_bytes(MAIL.replace(b"again-1@", b"c@"))
    monkeypatch.chdir(tmp_path / "outside")
    given = [Path("../via/a.eml"), Path("../via/b.eml"), Path("link.eml"), Path("c.eml")]
    report = run_ingest(runtime, given, timeout=120)
    assert report.counts()["failed"] == 0
    with runtime.read_sessions() as session:
        sources = dict(session.execute(select(Item.item_id, Item.source)).tuples().all())
    assert [sources.get(r.item_id or "") for r in report.results] == [
        str(real.resolve() / "a.eml"), str(real.resolve() / "b.eml"), str(real.resolve() / "target.eml"),
        str((tmp_path / "outside").resolve() / "c.eml")]


@pytest.mark.skipif(not SCAN.is_file(), reason=f"corpus scan not found at {SCAN}")
def test_extract_reads_before_classify_and_file_are_loaded_and_each_item_is_filed_once(
        tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15.10: the extract stage starts alone and reads the first chunk while classify and file
    (matcher, case types, search index) are still to be loaded; they join later from the bus, and
    every item is filed exactly once, with one document per part."""
    from sqlalchemy import func, select

    from casestore.models import Document, Item
    from ingest.runner import PipelineRunner

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "scan.tif").write_bytes(SCAN.read_bytes())
    for i in range(3):
        (inbox / f"{i}.eml").write_bytes(MAIL.replace(b"again-1@", f"early{i}@".encode())
                                         .replace(b"newbie@", f"newbie{i}@".encode()))
    when_added: list[tuple[list[str], bool, int]] = []
    real_add = PipelineRunner.add
    real_parts = Runtime.pipeline_parts

    def add(self: PipelineRunner, parts: object, stages: object) -> None:
        # running then: the stages' names, whether their threads are alive, the items published so far
        when_added.append(([w.handler.name for w in self.workers], self.alive(), published))
        real_add(self, parts, stages)  # type: ignore[arg-type]

    published = 0

    def parts(self: Runtime, **kwargs: bool) -> object:
        nonlocal published
        peek = runtime.bus.consumer(["intake.raw"], group="test-peek")  # a group of its own: takes nothing away
        try:
            published = len(peek.poll(max_records=100, timeout=1.0))
        finally:
            peek.close()
        return real_parts(self, **kwargs)

    monkeypatch.setattr(PipelineRunner, "add", add)
    monkeypatch.setattr(Runtime, "pipeline_parts", parts)
    report = run_ingest(runtime, [inbox], timeout=300)
    assert when_added == [(["extract"], True, 4)], "classify and file loaded after extract began on the chunk"
    assert [r.outcome for r in report.results if r.outcome in (None, "failed")] == [], report.as_dict()
    ids = [r.item_id for r in report.results]
    with runtime.read_sessions() as session:
        filed = session.scalars(select(Item.item_id).where(Item.item_id.in_(ids))).all()
        documents = session.execute(select(Document.item_id, func.count()).where(Document.item_id.in_(ids))
                                    .group_by(Document.item_id)).all()
    assert sorted(filed) == sorted(ids)
    assert sorted(tuple(row) for row in documents) == sorted((i, 1) for i in ids)  # one part each: none twice


def test_every_item_is_searchable_when_ingest_returns(tmp_path: Path, runtime: Runtime) -> None:
    """Issue 15.10: the file stage defers its index writes during `casework ingest` (``INDEX_EVERY_S``);
    what it held back is indexed before the command returns, and the search outbox is empty."""
    from casestore.search import outbox
    from casestore.search.port import SearchQuery, Viewer

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(4):
        (inbox / f"{i}.eml").write_bytes(MAIL.replace(b"again-1@", f"found{i}@".encode())
                                         .replace(b"newbie@", f"finder{i}@".encode()))
    report = run_ingest(runtime, [inbox], timeout=300)
    assert report.counts()["new_case"] == 4, report.as_dict()
    with runtime.read_sessions() as session:
        assert outbox.depth(session).pending == 0
        documents = session.scalars(select(Document.id).where(Document.item_id.in_(
            [r.item_id for r in report.results]))).all()
    found = runtime.search_index.search(SearchQuery(text="parcel", limit=100, facets=False, snippets=False),
                                        Viewer(role="admin"))
    assert sorted(h.document_id for h in found.hits) == sorted(documents) and len(documents) == 4
