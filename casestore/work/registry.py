"""Stored case-type versions: each (name, version) once, so a running case keeps its definition.

``register`` stores a loaded definition under its name and version.  The same content again is a
no-op; different content under a version already stored is refused ("bump version"), and so is a
version lower than the newest stored one.  ``get_definition`` gives back the definition a case
started with, parsed once per process (cached by name, version and digest).  Services flush,
never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casestore.errors import NotFound
from casestore.work.definitions import CaseType
from casestore.work.loader import LoadedType
from casestore.work.models import CaseTypeVersion, CaseWork
from casestore.work.problems import DefinitionError, Problem

log = logging.getLogger(__name__)

_CACHE_SIZE = 256
_cache: OrderedDict[tuple[str, int, str], CaseType] = OrderedDict()
_cache_lock = threading.Lock()


class RegisteredVersion(BaseModel):
    """One stored version of a case type."""

    name: str
    version: int
    digest: str
    source: str
    loaded_at: datetime


def _problem(loaded: LoadedType, message: str) -> DefinitionError:
    return DefinitionError([Problem(str(loaded.source), loaded.version_line, message)])


def register(session: Session, loaded: LoadedType) -> CaseTypeVersion:
    """Store ``loaded`` as (name, version) unless that is stored already with the same digest."""
    name, version = loaded.name, loaded.version
    row = session.get(CaseTypeVersion, (name, version))
    if row is None:
        newest = session.scalar(select(func.max(CaseTypeVersion.version)).where(CaseTypeVersion.name == name))
        if newest is not None and newest > version:
            raise _problem(loaded, f"{name} version {version} is older than the stored version {newest}: set "
                                   f"version: {newest + 1} in {loaded.source} (versions only go up)")
        row = CaseTypeVersion(name=name, version=version, digest=loaded.digest, source=str(loaded.source),
                              definition=loaded.case_type.model_dump(mode="json"))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another process stored it meanwhile: compare with theirs
            row = session.get(CaseTypeVersion, (name, version), populate_existing=True)
            if row is None:
                raise
        else:
            log.info("case type %s version %d registered from %s", name, version, loaded.source)
            return row
    if row.digest != loaded.digest:
        raise _problem(loaded, f"{name} version {version} is already stored with different content (from "
                               f"{row.source or 'an earlier load'}): bump version in {loaded.source} to "
                               f"{_next_version(session, name)} so running cases keep the version they started with")
    return row


def _next_version(session: Session, name: str) -> int:
    newest = session.scalar(select(func.max(CaseTypeVersion.version)).where(CaseTypeVersion.name == name))
    return (newest or 0) + 1


def register_all(session: Session, types: Mapping[str, LoadedType]) -> list[CaseTypeVersion]:
    """Register every type; one ``DefinitionError`` lists every refused one (nothing is half-done
    only if the caller rolls back, which it must on an error)."""
    rows: list[CaseTypeVersion] = []
    problems: list[Problem] = []
    for loaded in types.values():
        try:
            rows.append(register(session, loaded))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return rows


def get_definition(session: Session, name: str, version: int) -> CaseType:
    """The definition of ``name`` at ``version`` as stored (what a case started with)."""
    digest = session.scalar(select(CaseTypeVersion.digest).where(CaseTypeVersion.name == name,
                                                                 CaseTypeVersion.version == version))
    if digest is None:
        raise NotFound(f"case type {name!r} version {version} is not stored: run `casework casetype load`")
    return _definition(session, name, version, digest)


def definition_of_case(session: Session, case_id: int) -> CaseType:
    """The definition the case ``case_id`` runs on (``get_definition`` of its work row's type and
    version), found with one query instead of loading the work row first."""
    found = session.execute(
        select(CaseWork.case_type, CaseWork.type_version, CaseTypeVersion.digest)
        .outerjoin(CaseTypeVersion, (CaseTypeVersion.name == CaseWork.case_type)
                   & (CaseTypeVersion.version == CaseWork.type_version))
        .where(CaseWork.case_id == case_id)).first()
    if found is None:
        raise NotFound(f"case {case_id} has no case work")
    if found.digest is None:
        raise NotFound(f"case type {found.case_type!r} version {found.type_version} is not stored: "
                       "run `casework casetype load`")
    return _definition(session, found.case_type, found.type_version, found.digest)


def _definition(session: Session, name: str, version: int, digest: str) -> CaseType:
    key = (name, version, digest)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    definition = session.scalar(select(CaseTypeVersion.definition).where(CaseTypeVersion.name == name,
                                                                         CaseTypeVersion.version == version))
    case_type = CaseType.model_validate(definition)
    with _cache_lock:
        _cache[key] = case_type
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return case_type


def current_versions(session: Session) -> dict[str, int]:
    """The newest stored version of each case type (the one new cases start with)."""
    rows = session.execute(select(CaseTypeVersion.name, func.max(CaseTypeVersion.version))
                           .group_by(CaseTypeVersion.name)).all()
    return {name: int(version) for name, version in rows}


def registered_versions(session: Session) -> list[RegisteredVersion]:
    """Every stored version, by name then version."""
    rows = session.scalars(select(CaseTypeVersion).order_by(CaseTypeVersion.name, CaseTypeVersion.version))
    return [RegisteredVersion(name=r.name, version=r.version, digest=r.digest, source=r.source,
                              loaded_at=r.loaded_at) for r in rows]
