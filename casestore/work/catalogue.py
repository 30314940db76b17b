"""What case types there are: the versions stored, the files of a definitions folder (each with
whether the store has it), and the check of a folder, as read models.

``casework casetype list|check`` and the administration pages read these; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from casestore.work.calendar import BusinessCalendar
from casestore.work.loader import load_definitions
from casestore.work.outbox_port import KnownTemplates
from casestore.work.problems import DefinitionError
from casestore.work.registry import RegisteredVersion, registered_versions

FileState = Literal["loaded", "not loaded", "changed: bump version"]


class StoredVersion(RegisteredVersion):
    current: bool  # the newest stored version of its name: what new cases start with


class TypeSummary(BaseModel):
    """One definition file of a folder, checked."""

    name: str
    version: int
    title: str
    digest: str
    file: str
    calendar: str
    stages: int
    tasks: int
    queues: int
    clocks: int


class TypeFile(TypeSummary):
    state: FileState


class FolderCheck(BaseModel):
    """A folder of definitions, checked as a whole: its types and mapping, or every problem."""

    folder: str
    ok: bool
    types: list[TypeSummary]
    mapping: dict[str, str]  # document type -> case type
    default: str
    problems: list[str]  # ``file:line: what is wrong``


class Catalogue(BaseModel):
    case_types_dir: str
    stored: list[StoredVersion]
    files: list[TypeFile]
    problems: list[str]  # the configured folder's problems (its files are then not listed)


def check_folder(folder: Path, *, calendars: Mapping[str, BusinessCalendar],
                 templates: KnownTemplates | None = None) -> FolderCheck:
    """Load and check every definition in ``folder`` against ``calendars``; the store is not touched."""
    try:
        defs = load_definitions(folder, calendars=calendars, templates=templates)
    except DefinitionError as exc:
        return FolderCheck(folder=str(folder), ok=False, types=[], mapping={}, default="",
                           problems=[str(p) for p in exc.problems])
    types = []
    for loaded in defs.types.values():
        ct = loaded.case_type
        types.append(TypeSummary(name=ct.name, version=ct.version, title=ct.title, digest=loaded.digest,
                                 file=str(loaded.source), calendar=ct.calendar, stages=len(ct.stages),
                                 tasks=sum(len(s.tasks) for s in ct.stages), queues=len(ct.queues),
                                 clocks=len(ct.clocks)))
    return FolderCheck(folder=str(folder), ok=True, types=types, mapping=dict(sorted(defs.mapping.doc_types.items())),
                       default=defs.mapping.default, problems=[])


def catalogue(session: Session, *, folder: Path, calendars: Mapping[str, BusinessCalendar],
              templates: KnownTemplates | None = None) -> Catalogue:
    """Every stored version (marking each name's newest) and the configured folder's files, each
    ``loaded`` (stored with this content), ``not loaded`` or ``changed: bump version``."""
    stored = registered_versions(session)
    newest: dict[str, int] = {}
    for v in stored:
        newest[v.name] = max(newest.get(v.name, 0), v.version)
    digests = {(v.name, v.version): v.digest for v in stored}
    checked = check_folder(folder, calendars=calendars, templates=templates)
    files = []
    for t in checked.types:
        digest = digests.get((t.name, t.version))
        state: FileState = ("not loaded" if digest is None else "loaded" if digest == t.digest
                            else "changed: bump version")
        files.append(TypeFile(**t.model_dump(), state=state))
    return Catalogue(case_types_dir=str(folder),
                     stored=[StoredVersion(**v.model_dump(), current=newest[v.name] == v.version) for v in stored],
                     files=files, problems=checked.problems)
