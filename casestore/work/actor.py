"""Who is acting: the work services take this, never an HTTP or CLI object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """A signed-in user (or ``system`` for the clock loop and the file stage).

    ``role`` is one of the store's roles (agent, supervisor, admin, integration, or ``system``);
    ``teams`` decide which queues the actor works and which cases it may see.
    """

    name: str
    role: str
    teams: tuple[str, ...] = ()
    disabled: bool = False


SYSTEM = Actor(name="system", role="system")
