"""What is wrong with a definitions folder: each problem with its file and line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from casestore.errors import CaseStoreError

Path_ = tuple[str | int, ...]  # a place in a YAML document: ("stages", 1, "tasks", 0, "queue")


def dotted(path: Path_) -> str:
    """``stages[1].tasks[0].queue`` for ("stages", 1, "tasks", 0, "queue")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``file:line: message`` (line 0 when it is about the file or folder as a whole)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class DefinitionError(CaseStoreError):
    """A case-type definition (or the folder of them) is refused; ``problems`` lists every reason."""

    http_status = 422
    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "the definitions are refused")
