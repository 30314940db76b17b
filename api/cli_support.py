"""What every `casework` command shares: its consoles, how it fails, and how it opens the runtime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console

from api.settings import get_settings
from api.wiring import Runtime, open_runtime

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)  # one line, for logs
    raise typer.Exit(code)


@contextmanager
def runtime() -> Iterator[Runtime]:
    """Open the runtime; turn the packages' errors into a message and their exit code (the CLI's
    one place for ``exit_code``)."""
    rt: Runtime | None = None
    try:
        rt = open_runtime(get_settings())
        yield rt
    except typer.Exit:
        raise
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        fail(str(exc), int(code))
    finally:
        if rt is not None:
            rt.close()
