"""The cycle collector and a long-running process's start-up objects (issue 13's cost per item).

A process's start-up (imports, settings, the ORM's mappers, pydantic's validators, case types and
calendars) leaves ~150,000 objects that live as long as the process.  CPython's cycle collector
scans every tracked object at each full collection: in a file-stage worker that was ~0.1 s CPU a
collection and a fifth of the stage's CPU, spent on objects that can never be garbage.

``start_up`` turns the collector off while a command imports what it needs; ``settled`` moves
everything alive at that point into the collector's permanent generation (``gc.freeze``) and
turns it on again, so later collections look only at what the work itself makes.  Cycles are
still collected as before among those; objects made at start-up that become garbage later are
only freed by reference counting (the rare cycle among them stays: start-up objects are few and
made once).
"""

from __future__ import annotations

import gc


def start_up() -> None:
    """Call first thing in a command's entry point: no collections while modules are imported."""
    gc.disable()


def settled() -> None:
    """Call when start-up is done: what exists now is left out of every later collection."""
    gc.freeze()
    gc.enable()
