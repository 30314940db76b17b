"""Every setting in one table, made from the settings models themselves (their defaults and
descriptions), so the reference cannot drift from the code: ``python -m api.settings_doc`` writes
``docs/settings.md``; a test fails when that file is not what this renders, or when a setting has
no description.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from api.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
HEADER = """# Settings

Every setting of casework, from environment variables (or a `.env` file beside where casework
runs). Nested settings join with `__`; lists and objects are JSON. This file is generated from the
settings models (`python -m api.settings_doc`); a test keeps it in step with the code.

| variable | default | what it does |
|---|---|---|
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        return "(secret)" if value.get_secret_value() else "empty"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Enum):
        value = value.value
    if value in ("", [], {}):
        return "empty"
    if isinstance(value, Path):
        value = str(value)
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
    return f"`{text}`"


def _nested(field: FieldInfo) -> type[BaseModel] | None:
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) and ann is not SecretStr else None


def rows(model: type[BaseModel] = Settings, prefix: str = "CASEWORK_") -> Iterator[tuple[str, str, str]]:
    """(variable, default, description) of every leaf setting, in the models' order."""
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        nested = _nested(field)
        if nested is not None:
            yield from rows(nested, env + "__")
        else:
            yield env, _default(field), " ".join((field.description or "").split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    body = "".join(f"| `{env}` | {default} | {_cell(text)} |\n" for env, default, text in rows())
    return HEADER + body


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC} ({sum(1 for _ in rows())} settings)", file=sys.stderr)


if __name__ == "__main__":
    main()
