"""The configuration case work runs on, loaded once per process: calendars, case types, the
document-type mapping.

``load_setup`` reads the case-types folder (checked as a whole against the calendars; a broken
file is refused with its line), stores each case type's version in the store (a running
case keeps the version it started with) and returns a ``WorkSetup`` that the file stage, the API
and the CLI pass to the engine.  Nothing here reads settings: the caller gives the folders.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from casestore.errors import InvalidInput
from casestore.models import Case
from casestore.work import clocks
from casestore.work.definitions import CaseType
from casestore.work.loader import load_definitions
from casestore.work.outbox_port import KnownTemplates
from casestore.work.registry import register_all

log = logging.getLogger(__name__)

FALLBACK_TYPE = "general"


@dataclass(frozen=True)
class WorkSetup:
    """The configuration the work domain runs on, loaded once per process: the current version of
    each case type (each stored in ``case_type_versions``), which case type a document type opens,
    and the calendars by name."""

    case_types: Mapping[str, CaseType]
    doc_types: Mapping[str, str]
    calendars: clocks.Calendars
    default_type: str = FALLBACK_TYPE

    def type_named(self, name: str | None) -> CaseType | None:
        return self.case_types.get(name or "")

    def type_for_doc(self, doc_type: str | None) -> CaseType:
        """The case type a new case opened by a document of ``doc_type`` gets."""
        name = self.doc_types.get(doc_type or "", self.default_type)
        found = self.case_types.get(name) or self.case_types.get(self.default_type)
        if found is None:
            raise InvalidInput(f"no case type {name!r} nor {self.default_type!r} is loaded; add "
                               f"{self.default_type}.yaml to the case-types folder")
        return found

    def type_for_case(self, case: Case) -> CaseType:
        """The type a case without work gets: its own ``case_type`` if that names a loaded type,
        else what its ``case_type`` maps to as a document type, else the default."""
        return self.type_named(case.case_type) or self.type_for_doc(case.case_type)


def load_setup(session: Session, *, case_types_dir: Path, calendars: clocks.Calendars,
               templates: KnownTemplates | None = None) -> WorkSetup:
    """Load and check the case types against the calendars (``calendar_config.load_calendars``),
    and the message templates that exist (``templates``: an ``on_complete`` must send one),
    register the types' versions (flushes, the caller commits) and return the setup.
    ``DefinitionError`` names file and line."""
    definitions = load_definitions(case_types_dir, calendars=calendars, templates=templates)
    register_all(session, definitions.types)
    types = {name: loaded.case_type for name, loaded in definitions.types.items()}
    log.info("case work: %d case types from %s, %d calendars", len(types), case_types_dir, len(calendars))
    return WorkSetup(case_types=types, doc_types=dict(definitions.mapping.doc_types), calendars=calendars,
                     default_type=definitions.mapping.default)
