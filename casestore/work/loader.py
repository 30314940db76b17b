"""Load a folder of case-type definitions: one ``<name>.yaml`` per type plus ``mapping.yaml``.

Everything is checked before anything is used: YAML syntax, the typed shape
(``casestore.work.definitions``), the cross-references and reachability rules
(``casestore.work.definition_checks``), and the document-type mapping.  A folder with any
problem is refused as a whole with ``DefinitionError``, whose ``problems`` say
``file:line: what is wrong (what to do)`` for every problem found, not only the first.

``mapping.yaml`` maps the classifier's document types to case types, with a ``default``::

    complaint: complaint
    general_enquiry: general
    default: general

Without ``mapping.yaml`` each document type opens the case type of the same name, and any
other the type ``general`` (which must then exist).

The digest of a type is the sha256 of its canonical JSON (keys sorted, no spaces) *without the
fields left at their defaults*, so comments and layout do not change it, and a new optional
field added to the schema does not force every file's version up.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from inspect import isclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from casestore.work.calendar import BusinessCalendar
from casestore.work.definition_checks import check_case_type
from casestore.work.definitions import NAME_PATTERN, CaseType
from casestore.work.outbox_port import KnownTemplates
from casestore.work.problems import DefinitionError, Path_, Problem, dotted
from casestore.work.yaml_lines import YamlDocument, parse_yaml

__all__ = ["SHIPPED_DIR", "CaseTypeMapping", "DefinitionError", "Definitions", "LoadedType", "Problem",
           "digest_of", "load_case_type_file", "load_case_types", "load_definitions"]

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped" / "case_types"
MAPPING_FILE = "mapping.yaml"
MAX_FILE_BYTES = 1_000_000
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class LoadedType:
    """A checked case type, the file it came from and its digest."""

    case_type: CaseType
    source: Path
    digest: str
    version_line: int = 0  # the line of ``version:`` in the file (for "bump version" messages)

    @property
    def name(self) -> str:
        return self.case_type.name

    @property
    def version(self) -> int:
        return self.case_type.version


@dataclass(frozen=True)
class CaseTypeMapping:
    """Which case type a new case opened by a document of each type gets."""

    doc_types: Mapping[str, str]
    default: str
    source: Path | None = None

    def case_type_for(self, doc_type: str | None) -> str:
        return self.doc_types.get(doc_type or "", self.default)


@dataclass(frozen=True)
class Definitions:
    types: dict[str, LoadedType]
    mapping: CaseTypeMapping


def digest_of(case_type: CaseType) -> str:
    canonical = json.dumps(case_type.model_dump(mode="json", exclude_defaults=True), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_definitions(directory: Path | str, *, calendars: Mapping[str, BusinessCalendar] | None = None,
                     templates: KnownTemplates | None = None) -> Definitions:
    """Every case type in ``directory`` and its mapping; ``DefinitionError`` lists every problem.

    ``calendars``: the calendars that exist (``calendar_config.load_calendars``): each type's
    ``calendar`` must be one, and its durations are parsed on it.  None skips the name check.
    ``templates``: the message templates that exist (``on_complete.send`` must name one for the
    type and channel; the composition root passes ``casestore.outbound.templates.Templates``).
    None skips that check.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise DefinitionError([Problem(str(folder), 0, "is not a folder: give the folder of case-type YAML files "
                                                       "(CASEWORK_WORK__CASE_TYPES_DIR)")])
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.name != MAPPING_FILE
                   and not p.name.startswith("."))
    problems: list[Problem] = []
    types: dict[str, LoadedType] = {}
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            problems.append(Problem(str(path), 0, f"a second definition of {path.stem!r} (also {stems[path.stem]}): "
                                                  "keep one file per case type"))
            continue
        stems[path.stem] = path
        try:
            loaded = load_case_type_file(path, calendars=calendars, templates=templates)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        types[loaded.name] = loaded
    if not files:
        problems.append(Problem(str(folder), 0, "holds no case-type definitions (<name>.yaml): add at least one, "
                                                "e.g. general.yaml"))
    mapping, mapping_problems = _load_mapping(folder, set(stems))
    problems.extend(mapping_problems)
    if problems:
        raise DefinitionError(problems)
    return Definitions(types=types, mapping=mapping)


def load_case_types(directory: Path | str, *, calendars: Mapping[str, BusinessCalendar] | None = None,
                    templates: KnownTemplates | None = None) -> dict[str, LoadedType]:
    """The case types of ``directory`` by name (the whole folder is checked, mapping included)."""
    return load_definitions(directory, calendars=calendars, templates=templates).types


def load_case_type_file(path: Path, *, calendars: Mapping[str, BusinessCalendar] | None = None,
                        templates: KnownTemplates | None = None) -> LoadedType:
    """One checked definition file; ``DefinitionError`` lists its problems."""
    file = str(path)
    doc = _read_yaml(path)
    if doc.errors or doc.data is None:
        raise DefinitionError([Problem(file, line, msg) for line, msg in doc.errors])
    if not isinstance(doc.data, dict):
        raise DefinitionError([Problem(file, 1, "a definition is a mapping of fields (name, version, roles, "
                                                "queues, stages, ...), not a list or a single value")])
    try:
        case_type = CaseType.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors()
        deeper = [tuple(e["loc"]) for e in errors]
        kept = [e for e in errors  # "at least 1 item" because an item failed: the item's own error says why
                if not (e["type"] == "too_short" and any(len(d) > len(e["loc"]) and d[:len(e["loc"])] == e["loc"]
                                                         for d in deeper))]
        raise DefinitionError([_validation_problem(file, doc, e) for e in kept]) from None
    problems = check_case_type(case_type, doc, file=file, stem=path.stem, calendars=calendars,
                               templates=templates)
    if problems:
        raise DefinitionError(problems)
    return LoadedType(case_type=case_type, source=path, digest=digest_of(case_type),
                      version_line=doc.line(("version",)))


def _read_yaml(path: Path) -> YamlDocument:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return YamlDocument(data=None, errors=[(0, f"cannot read it ({exc.strerror}): check the permissions")])
    if len(raw) > MAX_FILE_BYTES:
        return YamlDocument(data=None, errors=[(0, f"is {len(raw)} bytes (at most {MAX_FILE_BYTES}): split it")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return YamlDocument(data=None, errors=[(line, "is not UTF-8 text: save it as UTF-8")])
    return parse_yaml(text)


def _load_mapping(folder: Path, type_names: set[str]) -> tuple[CaseTypeMapping, list[Problem]]:
    path = folder / MAPPING_FILE
    if not path.exists():
        problems = [] if "general" in type_names or not type_names else [
            Problem(str(folder), 0, f"no {MAPPING_FILE} and no general.yaml: add {MAPPING_FILE} "
                                    "(document type -> case type, and default: TYPE)")]
        return CaseTypeMapping(doc_types={n: n for n in type_names}, default="general"), problems
    file = str(path)
    doc = _read_yaml(path)
    problems = [Problem(file, line, msg) for line, msg in doc.errors]
    empty = CaseTypeMapping(doc_types={}, default="general", source=path)
    if problems:
        return empty, problems
    if not isinstance(doc.data, dict):
        return empty, [Problem(file, 1, "the mapping is document type: case type lines, plus default: TYPE")]
    doc_types: dict[str, str] = {}
    default: str | None = None
    for key, value in doc.data.items():
        line = doc.line((key,))
        if not isinstance(value, str):
            problems.append(Problem(file, line, f"{key}: give a case type name, not {value!r}"))
            continue
        if value not in type_names:
            problems.append(Problem(file, line, f"{key}: unknown case type {value!r}: use one of "
                                                f"{', '.join(sorted(type_names)) or '(none defined)'}"))
        if key != "default" and not _NAME.match(key):
            problems.append(Problem(file, line, f"{key!r} is not a document type name (lower-case letters, digits "
                                                "and _)"))
        if key == "default":
            default = value
        else:
            doc_types[key] = value
    if default is None:
        problems.append(Problem(file, 1, "no default: add default: general (the case type for any other document "
                                         "type)"))
    return CaseTypeMapping(doc_types=doc_types, default=default or "general", source=path), problems


def _model_at(loc: Path_) -> type[BaseModel] | None:
    """The model that holds the last element of ``loc`` (for naming its fields in a message)."""
    model: type[BaseModel] | None = CaseType
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _validation_problem(file: str, doc: YamlDocument, error: Any) -> Problem:
    loc: Path_ = tuple(p for p in error["loc"] if isinstance(p, str | int))
    where = dotted(loc)
    kind = error["type"]
    value = error.get("input")
    msg = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        text = f"{where} is missing: add it"
    elif kind == "extra_forbidden":
        model = _model_at(loc)
        fields = f" (allowed here: {', '.join(model.model_fields)})" if model is not None else ""
        text = f"unknown field {loc[-1]!r} at {where}: check the spelling{fields}"
    elif kind == "string_pattern_mismatch":
        text = f"{where}: {value!r} is not a valid name: use lower-case letters, digits and _, starting with a letter"
    elif kind in ("tuple_type", "list_type"):
        text = f"{where}: give a list, e.g. [a, b] (got {value!r})"
    elif kind == "literal_error":
        text = f"{where}: {value!r} is not allowed: {msg.replace('Input should be', 'use')}"
    elif kind == "value_error":
        text = f"{where}: {msg}"
    else:
        text = f"{where}: {msg} (got {value!r})"
    return Problem(file, doc.line(loc), text)
