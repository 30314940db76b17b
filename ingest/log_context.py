"""What a log line is about: the stage, the item and the case being worked on, where known.

Code that handles an item says so with ``about(item_id=..., case_ref=...)`` (a context manager
over ``contextvars``); ``ContextFilter``, installed on the handlers by the entry points'
logging set-up, copies the values onto every record as ``stage``, ``item_id`` and ``case_ref``
(``None`` where unknown), so a JSON log line carries them without each call passing them.

Context variables are per thread: a stage's worker thread sets its ``stage`` once when it starts;
a new thread starts with none of them set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

stage_var: ContextVar[str | None] = ContextVar("casework_stage", default=None)
item_var: ContextVar[str | None] = ContextVar("casework_item_id", default=None)
case_var: ContextVar[str | None] = ContextVar("casework_case_ref", default=None)

FIELDS = ("stage", "item_id", "case_ref")


@contextmanager
def about(*, stage: str | None = None, item_id: str | None = None, case_ref: str | None = None) -> Iterator[None]:
    """Within this block, log records carry the given stage, item and case (others keep their values)."""
    tokens = [(var, var.set(value)) for var, value in ((stage_var, stage), (item_var, item_id), (case_var, case_ref))
              if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts ``stage``, ``item_id`` and ``case_ref`` on every record (an ``extra=`` given by the call wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("stage", stage_var), ("item_id", item_var), ("case_ref", case_var)):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True
