"""CEL's parser from lark's grammar cache (``casestore.cel_grammar``, issue 15.10): the first process
writes the cache, later ones load it, and conditions read and evaluate the same either way, also
when the cache file is damaged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, logging, sys
from lark.utils import logger
seen = []
class Catch(logging.Handler):
    def emit(self, record):
        seen.append(record.getMessage())
logger.addHandler(Catch()); logger.setLevel(logging.DEBUG)
from casestore.cel_grammar import warm_parser
warm_parser()
from casestore.work.expressions import compile_condition
out = []
for text in ('true && case.urgency > 5', 'case.subject.startsWith("Re") || !customer.known', 'false'):
    c = compile_condition(text)
    out.append([c.evaluate({"case": {"urgency": u, "subject": s}, "customer": {"known": k}})
                for u, s, k in ((9, "Re: x", True), (1, "New", False), (1, "New", True))])
print(json.dumps({"results": out, "loaded": any("Loading grammar from cache" in m for m in seen)}))
"""


def _run(cache_home: Path) -> dict[str, object]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True,
                          cwd=ROOT, timeout=120)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


EXPECTED = [[True, False, False], [True, True, False], [False, False, False]]


def test_the_first_process_writes_the_cache_and_the_next_loads_it(tmp_path: Path) -> None:
    first = _run(tmp_path)
    files = list((tmp_path / "casework").iterdir())
    assert [f.name.startswith("cel-grammar-") and f.name.endswith(".cache") for f in files] == [True], files
    assert first == {"results": EXPECTED, "loaded": False}
    second = _run(tmp_path)
    assert second == {"results": EXPECTED, "loaded": True}
    assert list((tmp_path / "casework").iterdir()) == files  # no temporary file left behind


@pytest.mark.parametrize("damage", [b"", b"not a cache\n", b"0" * 64 + b"\n" + b"\x80\x04garbage"])
def test_a_damaged_cache_is_built_afresh(tmp_path: Path, damage: bytes) -> None:
    _run(tmp_path)
    (cache,) = (tmp_path / "casework").iterdir()
    cache.write_bytes(damage)
    assert _run(tmp_path)["results"] == EXPECTED


def test_without_a_cache_directory_the_parser_is_built_as_before(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")  # XDG_CACHE_HOME/casework cannot be made under a file
    assert _run(blocked) == {"results": EXPECTED, "loaded": False}
