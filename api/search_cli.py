"""`casework search`, `casework reindex` and `casework import documents`.

Register on the main app (api/cli.py)::

    from api import search_cli
    app.command("search")(search_cli.search)
    app.command("reindex")(search_cli.reindex)
    import_app.command("documents")(search_cli.import_documents)

The CLI runs as an operator: ``search`` sees every document (role admin).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from api.cli_support import err, out, runtime
from api.cli_support import fail as _fail
from api.wiring import Runtime
from casestore import access
from casestore.search.port import SearchIndex, SearchQuery, Viewer

OPERATOR = Viewer(role=access.OPERATOR.role)  # the CLI is run by whoever administers the machine: sees everything


@contextmanager
def _runtime() -> Iterator[tuple[Runtime, SearchIndex]]:
    """The runtime and its search index (errors handled as by every command)."""
    with runtime() as rt:
        yield rt, rt.search_index


def _progress(label: str, show: bool) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err, disable=not show)


def _day(value: str | None, name: str, *, end: bool) -> datetime | None:
    try:
        from api.params import date_bound  # FastAPI's, only when a date is given

        return date_bound(value, end=end)
    except ValueError:
        _fail(f"{name} {value!r} is not an ISO date: write 2024-03-31")


def search(
    query: Annotated[str, typer.Argument(help='words, "phrases", AND/OR/NOT, -word')],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    limit: Annotated[int, typer.Option(min=0, max=1000, help="hits to show")] = 20,
    channel: Annotated[list[str] | None, typer.Option(help="only this channel; repeatable")] = None,
    doc_type: Annotated[list[str] | None, typer.Option(help="only this document type; repeatable")] = None,
    sort: Annotated[str, typer.Option(help="relevance or date")] = "relevance",
    fuzzy: Annotated[bool, typer.Option(help="tolerate typos and OCR noise")] = False,
    dated_from: Annotated[str | None, typer.Option(help="sent or scanned on or after (ISO date)")] = None,
    dated_to: Annotated[str | None, typer.Option(help="sent or scanned on or before (ISO date)")] = None,
) -> None:
    """Search every document's text, title and customer."""
    with _runtime() as (_rt, index):
        result = index.search(SearchQuery(text=query, limit=limit, channels=tuple(channel or ()),
                                          doc_types=tuple(doc_type or ()), sort=sort,  # type: ignore[arg-type]
                                          fuzzy=fuzzy, dated_from=_day(dated_from, "--dated-from", end=False),
                                          dated_to=_day(dated_to, "--dated-to", end=True)), OPERATOR)
    if as_json:
        body: dict[str, Any] = {
            "total": result.total,
            "hits": [{"document_id": h.document_id, "item_id": h.item_id, "case_ref": h.case_ref, "title": h.title,
                      "snippet": h.snippet, "score": h.score, "received_at": h.received_at.isoformat(),
                      "sent_at": h.sent_at.isoformat() if h.sent_at else None,
                      "captured_at": h.captured_at.isoformat() if h.captured_at else None,
                      "channel": h.channel, "doc_type": h.doc_type} for h in result.hits],
            "facets": result.facets,
            "next_cursor": result.next_cursor,
        }
        sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table("document", "case", "received", "channel", "type", "title", "snippet")
    for h in result.hits:
        table.add_row(str(h.document_id), h.case_ref or "(triage)", h.received_at.date().isoformat(), h.channel,
                      h.doc_type, h.title, h.snippet.replace("<b>", "[bold]").replace("</b>", "[/bold]"))
    out.print(table)
    out.print(f"{result.total} document(s) match")


def reindex(
    batch: Annotated[int, typer.Option(min=1, help="documents per index commit / bulk request")] = 5000,
) -> None:
    """Rebuild the search index from the case store; resumes where an interrupted run stopped.

    Also the upgrade step after a search schema change: an index of an older schema version is
    recreated empty and filled again (``SearchIndexOutdated`` names this command).
    """
    from casestore.search import indexer  # here, not at the top: every `casework` command imports this module
    from casestore.search.factory import open_search_index

    with runtime() as rt:
        checkpoint = rt.settings.data_dir / "reindex.checkpoint.json"
        index = open_search_index(rt.settings.search.url, rt.settings.data_dir, rt.settings.search.access(),
                                  rebuild=True)
        if getattr(index, "rebuilt", False):  # an interrupted run's checkpoint names documents now gone
            checkpoint.unlink(missing_ok=True)
        with _progress("reindexing", err.is_terminal) as progress:
            task = progress.add_task("reindex", total=None)
            report = indexer.reindex(rt.sessions, index, batch=batch, checkpoint_path=checkpoint,
                                     progress=lambda done, total: progress.update(task, completed=done, total=total))
        index.close()
    resumed = f" (resumed after document {report.resumed_after})" if report.resumed_after is not None else ""
    out.print(f"indexed {report.indexed} document(s) in {report.seconds:.1f}s{resumed}")


def import_documents(
    file: Annotated[Path, typer.Argument(help="JSON Lines: case_ref, title, text, channel, doc_type, received_at")],
    batch: Annotated[int, typer.Option(min=1, help="lines per store transaction and index write")] = 5000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Migrate a legacy document repository (bulk, resumable: run it again after an interruption)."""
    if not file.is_file():
        _fail(f"{file} is not a file: give a JSON Lines file of documents")
    from casestore.search import indexer

    with _runtime() as (rt, index):
        checkpoint = rt.settings.data_dir / f"import-documents.{file.name}.checkpoint.json"

        def put_file(path: Path) -> tuple[str, int]:
            ref = rt.blobs.put(path.read_bytes())
            return ref.sha256, ref.size

        with _progress("importing", err.is_terminal and not as_json) as progress:
            task = progress.add_task("import", total=file.stat().st_size)
            report = indexer.import_documents(
                rt.sessions, index, file, batch=batch, checkpoint_path=checkpoint, put_file=put_file,
                progress=lambda done, total: progress.update(task, completed=done, total=total))
    errors = [{"line": e.line, "reason": e.reason} for e in report.errors]
    if as_json:
        sys.stdout.write(json.dumps({"imported": report.imported, "duplicates": report.duplicates,
                                     "indexed": report.indexed, "rejected": report.error_count,
                                     "seconds": round(report.seconds, 2), "errors": errors}) + "\n")
    else:
        out.print(f"documents: {report.imported} imported, {report.duplicates} already there, "
                  f"{report.error_count} rejected, {report.indexed} indexed in {report.seconds:.1f}s")
        for e in errors:
            err.print(f"  line {e['line']}: {e['reason']}", highlight=False)
    if report.error_count:
        raise typer.Exit(1)
