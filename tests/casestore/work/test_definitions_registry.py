"""Stored case-type versions on SQLite and PostgreSQL: each (name, version) once, content never
silently replaced, and the definition a case started with always retrievable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.errors import NotFound
from casestore.work.loader import SHIPPED_DIR, LoadedType, load_case_type_file, load_case_types
from casestore.work.models import CaseTypeVersion
from casestore.work.problems import DefinitionError
from casestore.work.registry import (
    current_versions,
    get_definition,
    register,
    register_all,
    registered_versions,
)
from tests.casestore.work.test_definitions_loader import BASE


def _load(folder: Path, text: str) -> LoadedType:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return load_case_type_file(path)


def _rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CaseTypeVersion)) or 0


def test_register_stores_each_version_once(session: Session, tmp_path: Path) -> None:
    v1 = _load(tmp_path / "v1", BASE)
    row = register(session, v1)
    assert (row.name, row.version, row.digest, row.source) == ("demo", 1, v1.digest, str(v1.source))
    assert register(session, _load(tmp_path / "v1again", "# comment only\n" + BASE)) is row  # same digest: no-op
    assert _rows(session) == 1

    changed = _load(tmp_path / "changed", BASE.replace("duration: 5d", "duration: 6d"))
    with pytest.raises(DefinitionError) as info:
        register(session, changed)
    problem = info.value.problems[0]
    assert (problem.file, problem.line) == (str(changed.source), 2)
    assert "bump version" in problem.message and "to 2" in problem.message
    assert _rows(session) == 1

    v2 = _load(tmp_path / "v2", BASE.replace("duration: 5d", "duration: 6d").replace("version: 1", "version: 2"))
    register(session, v2)
    assert current_versions(session) == {"demo": 2}
    assert get_definition(session, "demo", 1).clocks[0].duration == "5d"  # a running case keeps its version
    assert get_definition(session, "demo", 2).clocks[0].duration == "6d"
    assert [(v.name, v.version) for v in registered_versions(session)] == [("demo", 1), ("demo", 2)]


def test_versions_only_go_up(session: Session, tmp_path: Path) -> None:
    register(session, _load(tmp_path / "v3", BASE.replace("version: 1", "version: 3")))
    with pytest.raises(DefinitionError, match="older than the stored version 3: set version: 4"):
        register(session, _load(tmp_path / "v2", BASE.replace("version: 1", "version: 2")))


def test_get_definition_caches_by_digest(session: Session, tmp_path: Path) -> None:
    first = register(session, _load(tmp_path / "a", BASE))
    got = get_definition(session, "demo", 1)
    assert get_definition(session, "demo", 1) is got  # parsed once per process
    session.delete(first)
    session.flush()
    register(session, _load(tmp_path / "b", BASE.replace("duration: 5d", "duration: 7d")))
    assert get_definition(session, "demo", 1).clocks[0].duration == "7d"  # other content: not the cached one
    with pytest.raises(NotFound, match="casework casetype load"):
        get_definition(session, "demo", 9)


def test_register_all_shipped_and_report_every_refusal(session: Session, tmp_path: Path) -> None:
    shipped = load_case_types(SHIPPED_DIR)
    rows = register_all(session, shipped)
    assert {r.name for r in rows} == set(shipped)
    assert current_versions(session) == {name: loaded.version for name, loaded in shipped.items()}
    assert current_versions(session)["complaint"] == 3  # v3: closes by itself with the outcome (close_when_done)
    for name, loaded in shipped.items():
        assert get_definition(session, name, loaded.version) == loaded.case_type  # stored JSON gives the same
    folder = tmp_path / "edited"
    folder.mkdir()
    edited = {}
    for name in ("complaint", "claim"):
        path = folder / f"{name}.yaml"
        path.write_text((SHIPPED_DIR / f"{name}.yaml").read_text().replace("lease: 30m", "lease: 45m"))
        edited[name] = load_case_type_file(path)
    with pytest.raises(DefinitionError) as info:
        register_all(session, edited)
    assert sorted(Path(p.file).name for p in info.value.problems) == ["claim.yaml", "complaint.yaml"]
