"""`casework casetype check DIR | list | load [DIR]`: case-type definitions as configuration.

``check`` reads only files (no store); ``load`` registers the folder's types in the store, each
(name, version) once; ``list`` shows both.  Problems are printed one a line as
``file:line: what is wrong (what to do)`` on stderr, and exit with 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from api.cli_support import fail, out, runtime
from api.settings import get_settings

if TYPE_CHECKING:
    from casestore.work.calendar import BusinessCalendar
    from casestore.work.loader import Definitions
    from casestore.work.problems import DefinitionError

app = typer.Typer(help="Case types: the definitions (stages, tasks, queues, SLA clocks) that work follows.",
                  no_args_is_help=True)

DirArg = Annotated[Path, typer.Argument(help="folder of <name>.yaml definitions and mapping.yaml")]
CalendarsOpt = Annotated[Path | None, typer.Option(
    "--calendars", help="folder of business calendars (default: CASEWORK_WORK__CALENDARS_DIR)")]


def _calendars(folder: Path | None) -> dict[str, BusinessCalendar]:
    from casestore.work.calendar import CalendarError
    from casestore.work.calendar_config import load_calendars

    try:
        return load_calendars(folder or get_settings().calendars_dir)
    except CalendarError as exc:
        fail(f"the calendars cannot be loaded: {exc}", 2)


def _refuse(exc: DefinitionError) -> NoReturn:
    for problem in exc.problems:  # plain lines (no wrapping): file:line: message
        sys.stderr.write(f"{problem}\n")
    sys.stderr.write(f"{len(exc.problems)} problem(s): nothing was changed; fix them and run the command again\n")
    raise typer.Exit(exc.exit_code)


def _load(folder: Path, calendars: Path | None) -> Definitions:
    from api.outbound_parts import templates
    from casestore.work.loader import load_definitions
    from casestore.work.problems import DefinitionError

    try:  # on_complete's templates: those of CASEWORK_OUTBOUND__TEMPLATES_DIR and the shipped ones
        return load_definitions(folder, calendars=_calendars(calendars), templates=templates(get_settings()))
    except DefinitionError as exc:
        _refuse(exc)


@app.command("check")
def check(directory: DirArg, calendars: CalendarsOpt = None) -> None:
    """Check a folder of definitions (YAML, shape, references, reachability, conditions); the store is
    not touched.  Exit 0 with a summary, or 2 with every problem as file:line: message."""
    defs = _load(directory, calendars)
    for loaded in defs.types.values():
        ct = loaded.case_type
        tasks = sum(len(s.tasks) for s in ct.stages)
        out.print(f"{ct.name} v{ct.version}: {len(ct.stages)} stages, {tasks} tasks, {len(ct.queues)} queues, "
                  f"{len(ct.clocks)} clocks ({loaded.source.name})", highlight=False, soft_wrap=True)
    mapped = ", ".join(f"{d}->{t}" for d, t in sorted(defs.mapping.doc_types.items()))
    out.print(f"mapping: {mapped or '(none)'}; default {defs.mapping.default}", highlight=False, soft_wrap=True)
    out.print(f"{len(defs.types)} case type(s) OK in {directory}", highlight=False)


@app.command("list")
def list_types(as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Case types stored (every version) and the files in CASEWORK_WORK__CASE_TYPES_DIR, with versions."""
    from api.outbound_parts import templates
    from casestore.work.catalogue import catalogue

    folder = get_settings().case_types_dir
    calendars = _calendars(None)
    with runtime() as rt, rt.read_sessions() as session:
        found = catalogue(session, folder=folder, calendars=calendars, templates=templates(rt.settings))
    registered = [v.model_dump(mode="json") for v in found.stored]
    files = [{"name": f.name, "version": f.version, "digest": f.digest, "file": f.file, "state": f.state}
             for f in found.files]
    if as_json:
        body = {"case_types_dir": found.case_types_dir, "registered": registered, "files": files,
                "problems": found.problems}
        sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table("case type", "version", "current", "digest", "loaded at", "from", title="stored")
    for v in found.stored:
        table.add_row(v.name, str(v.version), "yes" if v.current else "", v.digest[:12],
                      v.loaded_at.isoformat(sep=" ")[:16], Path(v.source).name)
    out.print(table)
    table = Table("case type", "version", "state", "file", title=f"files in {folder}")
    for f in found.files:
        table.add_row(f.name, str(f.version), f.state, Path(f.file).name)
    out.print(table)
    for p in found.problems:
        sys.stderr.write(p + "\n")


@app.command("load")
def load(
    directory: Annotated[Path | None, typer.Argument(
        help="folder of definitions (default: CASEWORK_WORK__CASE_TYPES_DIR)")] = None,
    calendars: CalendarsOpt = None,
) -> None:
    """Check a folder and store each case type's version; running cases keep the version they started with."""
    from casestore.work.problems import DefinitionError
    from casestore.work.registry import current_versions, register_all

    folder = directory or get_settings().case_types_dir
    defs = _load(folder, calendars)
    with runtime() as rt, rt.sessions() as session, session.begin():
        before = current_versions(session)
        try:
            register_all(session, defs.types)
        except DefinitionError as exc:
            _refuse(exc)  # the transaction rolls back
    for loaded in defs.types.values():
        state = "unchanged" if before.get(loaded.name) == loaded.version else "stored"
        out.print(f"{loaded.name} v{loaded.version}: {state}", highlight=False)
