"""PDFium in a child process with an address-space limit, so a hostile PDF cannot take the process down.

PDFium allocates as a file tells it to (a stream that inflates to gigabytes, a page the size of a
field rendered at 300 dpi). ``pdf_guard`` refuses the cases it can see before any allocation; this
is the backstop for the rest: the calls of ``ingest.extract.pdf_reader`` run in one long-lived
child (``serve`` in ``python -c``) that sets ``RLIMIT_AS`` on itself before
it imports PDFium. A call that runs out of memory there raises ``MemoryError`` or kills the child;
either way the caller gets ``LimitExceeded`` (the item is refused with that reason) and the next
call starts a fresh child. One child per memory limit and process; calls are serialised (PDFium
is not thread-safe anyway), the OCR that follows them runs in the parent's threads.

The protocol is length-prefixed pickles over the child's stdin and stdout. The parent unpickles
replies with an allow-list (the reader's result types and the ingest errors), never arbitrary classes.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import pickle
import resource
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from ingest.errors import IngestError, LimitExceeded

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">Q")
_ALLOWED = {
    ("ingest.extract.pdf_reader", "PdfReading"),
    ("ingest.extract.pdf_reader", "RenderedPage"),
    ("ingest.extract.pdf_attachments", "PdfEmbeddedFile"),
    ("builtins", "RuntimeError"),
    ("builtins", "MemoryError"),
}
_CALLS = ("read_pdf", "render_page", "page_count")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or module == "ingest.errors":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the PDF reader sent an unexpected type {module}.{name}")


def _send(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive_bytes(stream: IO[bytes]) -> bytes:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the PDF reader closed its output")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the PDF reader stopped mid-reply")
    return data


class PdfChild:
    """One child process; ``call`` runs a ``pdf_reader`` function in it and returns its result."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", f"from ingest.extract.pdf_child import serve; serve({self.memory_mb:d})"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            log.debug("PDF reader child %d started (%d MiB limit)", self._process.pid, self.memory_mb)
        return self._process

    def call(self, function: str, **kwargs: Any) -> Any:
        if function not in _CALLS:
            raise ValueError(f"unknown PDF reader call {function!r}")
        with self._lock:
            process = self._start()
            assert process.stdin is not None and process.stdout is not None
            try:
                _send(process.stdin, (function, kwargs))
                kind, value = _Unpickler(io.BytesIO(_receive_bytes(process.stdout))).load()
            except (OSError, EOFError):
                code = process.wait()
                self._process = None
                log.warning("PDF reader child %d ended mid-call (exit status %d)", process.pid, code)
                raise self._refused() from None
            if kind == "error" and isinstance(value, MemoryError):
                # a child that ran out of memory may be in a bad state: start afresh next time. Under the
                # lock: another thread's call must never meet a child closed under it.
                self.close()
                raise self._refused()
        if kind == "ok":
            return value
        raise value

    def _refused(self) -> LimitExceeded:
        """One reason whether PDFium raised MemoryError or the child died of the limit: which of the two
        happens can vary from run to run with the same file, and the same file must get the same outcome."""
        return LimitExceeded(
            f"reading this PDF took the PDF reader over its {self.memory_mb:,} MiB memory limit (pdf_memory_mb) "
            "or crashed it; refused as a possible decompression bomb. If the file is genuine, ask the sender for "
            "a simpler export or raise pdf_memory_mb"
        )

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


_CHILDREN: dict[tuple[int, int], PdfChild] = {}  # (pid, memory limit): a forked process starts its own
_CHILDREN_LOCK = threading.Lock()


def pdf_child(memory_mb: int) -> PdfChild:
    """The process's child for this memory limit (started on its first call)."""
    key = (os.getpid(), memory_mb)
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(key)
        if child is None:
            child = _CHILDREN[key] = PdfChild(memory_mb)
        return child


@atexit.register
def _close_all() -> None:
    with _CHILDREN_LOCK:
        for (pid, _), child in _CHILDREN.items():
            if pid == os.getpid():
                child.close()
        _CHILDREN.clear()


def serve(memory_mb: int) -> None:
    """The child's loop: limit the address space, then answer calls until stdin closes."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from ingest.extract import pdf_reader  # PDFium is loaded under the limit

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    while True:
        try:
            function, kwargs = pickle.loads(_receive_bytes(stdin))
        except EOFError:
            return
        try:
            reply: tuple[str, object] = ("ok", getattr(pdf_reader, function)(**kwargs))
        except IngestError as exc:
            reply = ("error", exc)
        except MemoryError:
            _send(stdout, ("error", MemoryError()))
            return
        except Exception as exc:  # an unexpected PDFium error: the parent dead-letters it with this text
            reply = ("error", RuntimeError(f"PDF reader failed: {type(exc).__name__}: {exc}"))
        try:
            _send(stdout, reply)
        except MemoryError:
            _send(stdout, ("error", MemoryError()))
            return

