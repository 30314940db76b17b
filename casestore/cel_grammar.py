"""celpy's CEL parser built from lark's grammar cache (issue 15.10).

celpy keeps one shared lark parser (``celpy.celparser.CELParser.CEL_PARSER``), built the first time a
CEL expression is compiled: analysing CEL's grammar into LALR tables took ~0.1 CPU s in every process
that loads case types (`casework ingest`, `serve`, each stage worker), where loading the analysed
tables from lark's cache takes ~0.01 s.  ``warm_parser`` builds that shared parser with the cache
before the case types are loaded (``api.wiring.Runtime.work``); ``casestore.work.expressions`` then
uses it as it is.  celpy builds the parser itself, with its own options whatever its version: only
lark's ``cache`` option is added.

The cache is a file in the user's cache directory (``XDG_CACHE_HOME``, else ~/.cache, then
``casework/``), named by the cel-python, lark and Python versions.  A new one is written under a name
of this process and thread and then renamed, so no process reads another's half-written file; lark
checks the grammar's and options' digest on loading, builds afresh when it does not match, and carries
on (building afresh) when the file cannot be read.  Without a cache directory (none can be made), the
parser is built as celpy builds it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_lock = threading.Lock()


def cache_path() -> Path | None:
    """The cache file for this cel-python, lark and Python; None when its directory cannot be made."""
    import lark

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "casework"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("no cache directory for CEL's grammar (%s): it is analysed in each process", exc)
        return None
    cel = importlib.metadata.version("cel-python")
    return root / f"cel-grammar-{cel}-lark-{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}.cache"


def warm_parser() -> None:
    """Build celpy's shared parser from the cache (writing the cache first if there is none)."""
    from celpy import celparser

    with _lock:
        if celparser.CELParser.CEL_PARSER is not None:
            return
        path = cache_path()
        if path is None:
            return
        fresh = not path.is_file()
        target = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}") if fresh else path
        build = celparser.Lark
        celparser.Lark = functools.partial(build, cache=str(target))  # type: ignore[misc,assignment]
        try:
            celparser.CELParser()
        finally:
            celparser.Lark = build  # type: ignore[misc]
        if fresh:
            with contextlib.suppress(OSError):
                os.replace(target, path)
