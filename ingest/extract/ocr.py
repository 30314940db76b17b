"""The one wrapper around the tesseract command: a subprocess with one thread, a timeout and a memory cap.

At most ``OcrSettings.processes`` tesseract processes (the ``ocr_processes`` setting; default one per
core) run at a time in this process, however many threads ask (``ocr_slots``): tesseract is a
subprocess, so threads that wait for it are enough to use every core.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from ingest.extract.ocr_words import OcrText, parse_tsv

log = logging.getLogger(__name__)

INSTALL_HINT = "OCR not available: install tesseract-ocr (and tesseract-ocr-eng)"
CORES = os.cpu_count() or 1
_SLOTS: dict[int, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()
# Set once this process has started a tesseract run: `casework ingest` loads its later stages when
# the first pages are in tesseract, so that loading does not hold the interpreter while they are prepared.
TESSERACT_STARTED = threading.Event()


class OcrError(Exception):
    """OCR could not produce text for an image; the message says why (becomes Part.error)."""


class OcrNotAvailable(OcrError):
    pass


@dataclass(frozen=True)
class OcrSettings:
    """How tesseract is run: languages (``eng+deu``), per-run timeout and address-space cap, and the
    most pixels of one page image given to it (a larger one is scaled down first)."""

    language: str = "eng"
    timeout_seconds: float = 120
    memory_mb: int = 1024
    max_pixels: int | None = None
    processes: int = CORES  # tesseract processes at once in this process


def ocr_slots(processes: int) -> threading.BoundedSemaphore:
    """The process's semaphore for ``processes`` tesseract runs at once (one per setting value)."""
    with _SLOTS_LOCK:
        slots = _SLOTS.get(processes)
        if slots is None:
            slots = _SLOTS[processes] = threading.BoundedSemaphore(max(1, processes))
        return slots


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


def run_tesseract(path: Path, args: list[str], settings: OcrSettings) -> str:
    """stdout of ``tesseract PATH stdout ARGS`` (one thread, limits, one of ``ocr_slots(settings.processes)``)."""
    exe = tesseract_path()
    if exe is None:
        raise OcrNotAvailable(INSTALL_HINT)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    command = _limited(
        [exe, str(path), "stdout", *args], settings.memory_mb, int(settings.timeout_seconds) + 1
    )
    with ocr_slots(settings.processes):
        TESSERACT_STARTED.set()
        try:
            done = subprocess.run(
                command, capture_output=True, env=env, timeout=settings.timeout_seconds, check=False
            )
        except subprocess.TimeoutExpired:
            raise OcrError(f"OCR gave up after {settings.timeout_seconds:g} s (ocr_timeout_seconds)") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        message = detail[-1] if detail else f"exit status {done.returncode}"
        if done.returncode < 0:
            message = f"killed by signal {-done.returncode} (memory or CPU limit?); {message}"
        raise OcrError(f"tesseract could not read the image: {message}")
    return done.stdout.decode("utf-8", "replace")


def ocr_words(path: Path, settings: OcrSettings, *, dpi: int | None = None) -> OcrText:
    """Text and word confidences of an image file (PNM, PNG, JPEG, TIFF), layout analysis ``--psm 3``."""
    args = ["-l", settings.language, "--psm", "3"]
    if dpi:
        args += ["--dpi", str(dpi)]
    return parse_tsv(run_tesseract(path, [*args, "tsv"], settings))


_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.M)
_ORIENTATION_CONF = re.compile(r"^Orientation confidence:\s*([\d.]+)", re.M)


def detect_rotation(path: Path, settings: OcrSettings, *, dpi: int | None = None) -> tuple[int, float] | None:
    """(degrees to turn the page clockwise so text is upright, confidence) from tesseract's OSD,
    or None when OSD cannot tell (too little text)."""
    args = ["--psm", "0"] + (["--dpi", str(dpi)] if dpi else [])
    try:
        out = run_tesseract(path, args, settings)
    except OcrNotAvailable:
        raise
    except OcrError as exc:  # "Too few characters", etc.
        log.debug("orientation detection failed for %s: %s", path, exc)
        return None
    rotate, confidence = _ROTATE.search(out), _ORIENTATION_CONF.search(out)
    if rotate is None:
        return None
    return int(rotate.group(1)) % 360, float(confidence.group(1)) if confidence else 0.0
