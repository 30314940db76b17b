"""SLA clocks and lease times as a person reads them: "due in 3 h 5 min", "breached 2 h ago",
"paused, 1 h 20 min left", and the state a page styles (``ok``, ``at_risk``, ``breached``,
``paused``, ``met``).

A clock is *breached* once the clock loop marked it or its due time has passed while it runs, and
*at risk* once its warning moment has passed (the rule of ``casestore.work.queue_reads``).  The
page shows the time at rendering; ``workbench.js`` keeps the countdowns current from the
``datetime`` of each ``<time data-countdown>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from casestore.work.views import ClockView

ClockState = Literal["ok", "at_risk", "breached", "paused", "met", "stopped"]
LABELS: dict[ClockState, str] = {"ok": "on time", "at_risk": "at risk", "breached": "breached", "paused": "paused",
                                 "met": "met", "stopped": "stopped"}


@dataclass(frozen=True)
class ShownClock:
    name: str
    title: str
    state: ClockState
    due_at: datetime | None
    text: str  # the countdown, or what became of the clock

    @property
    def label(self) -> str:
        return LABELS[self.state]


def span(delta: timedelta) -> str:
    """A duration in the two largest units: ``2 d 4 h``, ``3 h 5 min``, ``4 min``, ``under a minute``."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "under a minute"


def until(when: datetime, now: datetime) -> str:
    """``in 3 h 5 min`` or ``2 h ago``."""
    return f"in {span(when - now)}" if when >= now else f"{span(when - now)} ago"


def clock_state(clock: ClockView, now: datetime) -> ClockState:
    if clock.state == "stopped":
        return "stopped" if clock.breached_at is not None else "met"
    if clock.breached_at is not None or (clock.state == "running" and clock.due_at is not None
                                         and clock.due_at <= now):
        return "breached"
    if clock.state == "paused":
        return "paused"
    if clock.warned_at is not None or (clock.warn_at is not None and clock.warn_at <= now):
        return "at_risk"
    return "ok"


def worst(clocks: list[ShownClock]) -> ClockState:
    """The state a row of a list takes from its case's clocks: breached, else at risk, else ok."""
    states = {c.state for c in clocks}
    return "breached" if "breached" in states else "at_risk" if "at_risk" in states else "ok"


def show_clock(clock: ClockView, now: datetime) -> ShownClock:
    state = clock_state(clock, now)
    if state == "paused":
        left = timedelta(seconds=max(0, clock.budget_seconds - clock.used_seconds))
        text = f"paused, {span(left)} of working time left"
    elif state in ("met", "stopped"):
        text = f"stopped {clock.stopped_at:%Y-%m-%d %H:%M}" if clock.stopped_at else "stopped"
        if state == "stopped":
            text += ", after its breach"
    elif clock.due_at is not None:
        text = ("due " if state != "breached" else "was due ") + until(clock.due_at, now)
    else:
        text = "no due time"
    return ShownClock(name=clock.name, title=clock.title or clock.name.replace("_", " "), state=state,
                      due_at=clock.due_at if state not in ("met", "stopped", "paused") else None, text=text)
