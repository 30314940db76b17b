"""SLA clock state: start, pause, resume, stop, change, and the moments the clock loop fires at.

A clock counts working time on its calendar.  ``used_seconds`` is the working time used before
``resumed_at``; while running, the clock is due at ``due(resumed_at, budget - used)`` and warns
at ``due(resumed_at, budget * warn% - used)``.  ``next_fire_at`` is the next moment the clock
loop must look at it: ``warn_at`` until warned, then ``due_at`` until breached, then None; and
None while paused or stopped.  A paused clock has no due or warn time (it does not run); a
stopped clock keeps the ones it had, so the folder can show whether it was met.

These functions change the row and nothing else: the engine writes the audit event of each
transition and refreshes the order of the case's tasks.  Calendars come in from the caller
(loaded once from the configured folder by ``calendar_config.load_calendars``); nothing here
reads settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from casestore.errors import InvalidInput
from casestore.work.calendar import BusinessCalendar, due, parse_duration, working_time_between
from casestore.work.definitions import Clock
from casestore.work.models import SlaClock

log = logging.getLogger(__name__)

Calendars = Mapping[str, BusinessCalendar]


def calendar_named(calendars: Calendars, name: str) -> BusinessCalendar:
    """The calendar ``name``; InvalidInput naming the ones configured when it is not there."""
    try:
        return calendars[name]
    except KeyError:
        known = ", ".join(sorted(calendars)) or "none"
        raise InvalidInput(f"calendar {name!r} is not configured (configured: {known}); add {name}.yaml to the "
                           "calendars folder (CASEWORK_WORK__CALENDARS_DIR)") from None


def _seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def used_at(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> timedelta:
    """Working time the clock has used by ``now`` (including the running stretch)."""
    used = timedelta(seconds=clock.used_seconds)
    if clock.state == "running" and clock.resumed_at is not None:
        used += working_time_between(clock.resumed_at, now, calendar)
    return used


def next_fire(clock: SlaClock) -> datetime | None:
    """When the clock loop must next look at this clock (see the module docstring)."""
    if clock.state != "running":
        return None
    if clock.warned_at is None:
        return clock.warn_at
    if clock.breached_at is None:
        return clock.due_at
    return None


def moments(resumed_at: datetime, used_seconds: int, budget_seconds: int, warn_percent: int,
            calendar: BusinessCalendar) -> tuple[datetime, datetime]:
    """(due, warn) of a clock running since ``resumed_at`` with ``used_seconds`` used before."""
    warn_budget = budget_seconds * warn_percent // 100
    return (due(resumed_at, timedelta(seconds=max(0, budget_seconds - used_seconds)), calendar),
            due(resumed_at, timedelta(seconds=max(0, warn_budget - used_seconds)), calendar))


def schedule(clock: SlaClock, calendar: BusinessCalendar) -> None:
    """Recompute ``due_at``, ``warn_at`` and ``next_fire_at`` from the clock's budget and use."""
    if clock.state == "running" and clock.resumed_at is not None:
        clock.due_at, clock.warn_at = moments(clock.resumed_at, clock.used_seconds, clock.budget_seconds,
                                              clock.warn_percent, calendar)
    elif clock.state == "paused":
        clock.due_at = clock.warn_at = None
    clock.next_fire_at = next_fire(clock)


def new_clock(*, case_id: int, definition: Clock, calendar_name: str, calendar: BusinessCalendar,
              now: datetime, paused: bool) -> SlaClock:
    """A clock row started at ``now`` (paused at once when the case is in one of its pause statuses)."""
    clock = SlaClock(case_id=case_id, name=definition.name, calendar=calendar_name, used_seconds=0,
                     warn_percent=definition.warn_at_percent)
    restart(clock, definition=definition, calendar=calendar, now=now, paused=paused)
    return clock


def restart(clock: SlaClock, *, definition: Clock, calendar: BusinessCalendar, now: datetime, paused: bool) -> None:
    """Start the clock afresh (a stopped clock whose start event happened again)."""
    clock.budget_seconds = _seconds(parse_duration(definition.duration, calendar))
    clock.warn_percent = definition.warn_at_percent
    clock.used_seconds = 0
    clock.started_at = now
    clock.resumed_at = None if paused else now
    clock.state = "paused" if paused else "running"
    clock.warned_at = clock.breached_at = clock.stopped_at = None
    clock.due_at = clock.warn_at = None
    schedule(clock, calendar)


def pause(clock: SlaClock, *, calendar: BusinessCalendar, now: datetime) -> None:
    """Stop counting: the working time since the last resume is added to ``used_seconds``."""
    if clock.state != "running":
        raise InvalidInput(f"clock {clock.name} is {clock.state}, not running; only a running clock pauses")
    clock.used_seconds = _seconds(used_at(clock, calendar, now))
    clock.resumed_at = None
    clock.state = "paused"
    schedule(clock, calendar)


def resume(clock: SlaClock, *, calendar: BusinessCalendar, now: datetime) -> None:
    """Count again from ``now``."""
    if clock.state != "paused":
        raise InvalidInput(f"clock {clock.name} is {clock.state}, not paused; only a paused clock resumes")
    clock.resumed_at = now
    clock.state = "running"
    schedule(clock, calendar)


def reopen(clock: SlaClock, *, calendar: BusinessCalendar, now: datetime, paused: bool) -> None:
    """A stopped clock counts on from ``now`` with the working time it had used (its case reopened);
    warnings and breaches it fired stay fired.  Paused at once when the case is in a pause status."""
    if clock.state != "stopped":
        raise InvalidInput(f"clock {clock.name} is {clock.state}, not stopped; only a stopped clock reopens")
    clock.stopped_at = None
    clock.state = "paused" if paused else "running"
    clock.resumed_at = None if paused else now
    schedule(clock, calendar)


def stop(clock: SlaClock, *, calendar: BusinessCalendar, now: datetime) -> None:
    """The clock is done: its used time is final; due and warn times stay for the record."""
    if clock.state == "stopped":
        raise InvalidInput(f"clock {clock.name} is stopped already")
    if clock.state == "running":
        clock.used_seconds = _seconds(used_at(clock, calendar, now))
    clock.resumed_at = None
    clock.state = "stopped"
    clock.stopped_at = now
    clock.next_fire_at = None


def change(clock: SlaClock, *, calendar: BusinessCalendar, now: datetime, duration: str | None = None,
           due_at: datetime | None = None) -> None:
    """A supervisor's change: a new total ``duration`` (working time, e.g. "3d") or a new due time.

    A new due time sets the budget so that the clock, counting from now, is due then.  A warning
    or breach already fired fires again when its new moment is still ahead (the deadline moved).
    """
    if (duration is None) == (due_at is None):
        raise InvalidInput("give either a new duration (e.g. \"3d\") or a new due time, not both or neither")
    if clock.state == "stopped":
        raise InvalidInput(f"clock {clock.name} is stopped; a stopped clock cannot be changed")
    used = used_at(clock, calendar, now)
    if duration is not None:
        budget = parse_duration(duration, calendar)
    else:
        assert due_at is not None
        if due_at <= now:
            raise InvalidInput(f"the new due time {due_at.isoformat()} is not in the future; give a later one")
        ahead = working_time_between(now, due_at, calendar)
        if ahead <= timedelta(0):
            raise InvalidInput(f"calendar {calendar.name} has no working time between now and {due_at.isoformat()} "
                               "(outside its working hours): give a due time within working hours, or a duration")
        budget = used + ahead
    if budget <= timedelta(0):
        raise InvalidInput("a clock needs a duration of more than zero")
    if clock.state == "running":  # fold the running stretch in, so the new budget counts from now
        clock.used_seconds = _seconds(used)
        clock.resumed_at = now
    clock.budget_seconds = _seconds(budget)
    schedule(clock, calendar)
    if clock.state == "running":
        if clock.breached_at is not None and clock.due_at is not None and clock.due_at > now:
            clock.breached_at = None
        if clock.warned_at is not None and clock.warn_at is not None and clock.warn_at > now:
            clock.warned_at = None
        clock.next_fire_at = next_fire(clock)
