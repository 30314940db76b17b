"""The one wrapper around the tesseract command: a subprocess with one thread, a timeout and a memory cap."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = "OCR not available: install tesseract-ocr (and tesseract-ocr-eng)"


class OcrError(Exception):
    """OCR could not produce text for an image; the message says why (becomes Part.error)."""


class OcrNotAvailable(OcrError):
    pass


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


def _limited(command: list[str], memory_mb: int, cpu_seconds: int) -> list[str]:
    """Wrap ``command`` in util-linux ``prlimit`` (address space and CPU time).

    ``prlimit`` rather than ``preexec_fn``: the pipeline runs extraction in threads, and
    ``preexec_fn`` is not safe in a threaded process (it can deadlock the child).
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        log.warning("prlimit (util-linux) not found: tesseract runs without a memory/CPU limit")
        return command
    memory = memory_mb * 1024 * 1024
    return [prlimit, f"--as={memory}", f"--cpu={cpu_seconds}:{cpu_seconds + 5}", "--", *command]


def ocr_file(path: Path, *, language: str, timeout_seconds: float, memory_mb: int) -> str:
    """Text of an image file (PNG, JPEG, TIFF incl. multi-page, PNM, GIF); pages split by form feeds."""
    exe = tesseract_path()
    if exe is None:
        raise OcrNotAvailable(INSTALL_HINT)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    command = _limited([exe, str(path), "stdout", "-l", language, "--psm", "3"], memory_mb, int(timeout_seconds) + 1)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            env=env,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OcrError(f"OCR gave up after {timeout_seconds:g} s (ocr_timeout_seconds)") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        message = detail[-1] if detail else f"exit status {done.returncode}"
        if done.returncode < 0:
            message = f"killed by signal {-done.returncode} (memory or CPU limit?); {message}"
        raise OcrError(f"tesseract could not read the image: {message}")
    return done.stdout.decode("utf-8", "replace")


def ocr_bytes(data: bytes, *, suffix: str, language: str, timeout_seconds: float, memory_mb: int) -> str:
    """Like ``ocr_file`` for bytes in memory (written to a private temporary file)."""
    if tesseract_path() is None:
        raise OcrNotAvailable(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="casework-ocr-") as tmp:
        path = Path(tmp) / f"image{suffix}"
        path.write_bytes(data)
        return ocr_file(path, language=language, timeout_seconds=timeout_seconds, memory_mb=memory_mb)
