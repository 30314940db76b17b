"""Logging for every entry point (``casework`` commands, ``serve``, workers, stage child processes).

``CASEWORK_LOG__FORMAT``:

* ``text`` (the default): ``time LEVEL [stage] logger: message`` lines for a person at a terminal;
* ``json``: one JSON object per line, for a log collector: ``time`` (ISO 8601, UTC), ``level``,
  ``logger``, ``message`` (with its %-style arguments filled in), ``stage``, ``item_id`` and
  ``case_ref`` (``null`` where the line is not about one; see ``ingest.log_context``), ``process``,
  ``exc_info`` with the traceback when there is one, and whatever ``extra=`` a call gave.
  Formatted by python-json-logger.

uvicorn's own loggers are sent through the same handler (``uvicorn_log_config``), so ``serve``
writes one format only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from ingest.log_context import ContextFilter

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(stage_label)s%(name)s: %(message)s"
JSON_FIELDS = ("levelname", "name", "message", "stage", "item_id", "case_ref", "process")


class _TextFormatter(logging.Formatter):
    """The text format, with ``[stage] `` before the logger's name when the line comes from a stage."""

    def format(self, record: logging.LogRecord) -> str:
        stage = getattr(record, "stage", None)
        record.stage_label = f"[{stage}] " if stage else ""
        return super().format(record)


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(list(JSON_FIELDS), timestamp="time",
                             rename_fields={"levelname": "level", "name": "logger"})
    return _TextFormatter(TEXT_FORMAT)


def configure_logging(*, level: int, fmt: LogFormat) -> None:
    """Replace the root logger's handlers with one on stderr in ``fmt``; set the root's level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's loggers without handlers of their own: their lines reach the root's handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error",
                                                                           "uvicorn.access")},
    }
