"""How the pages show an SLA clock: its state (the rule the queue counts use) and its countdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.web.sla import clock_state, show_clock, span, until, worst
from casestore.work.views import ClockView

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def clock(**changes: Any) -> ClockView:
    values: dict[str, Any] = dict(name="final_response", title="", state="running", calendar="default",
                                  budget_seconds=8 * 3600, used_seconds=0, started_at=NOW - 2 * H, due_at=NOW + 6 * H,
                                  warn_at=NOW + 4 * H, warned_at=None, breached_at=None, stopped_at=None)
    return ClockView(**(values | changes))


@pytest.mark.parametrize(("changes", "state"), [
    ({}, "ok"),
    ({"warn_at": NOW - H}, "at_risk"),  # its warning moment passed: the clock loop may not have run yet
    ({"warned_at": NOW - H, "warn_at": NOW + H}, "at_risk"),
    ({"due_at": NOW - timedelta(minutes=1), "warn_at": NOW - H}, "breached"),
    ({"breached_at": NOW - H, "due_at": NOW + H}, "breached"),
    ({"state": "paused", "due_at": None, "warn_at": None, "used_seconds": 3 * 3600}, "paused"),
    ({"state": "paused", "due_at": None, "breached_at": NOW - H}, "breached"),
    ({"state": "stopped", "stopped_at": NOW - H}, "met"),
    ({"state": "stopped", "stopped_at": NOW - H, "breached_at": NOW - 2 * H}, "stopped"),
])
def test_a_clock_is_ok_at_risk_breached_paused_or_met(changes: dict[str, Any], state: str) -> None:
    assert clock_state(clock(**changes), NOW) == state


def test_what_a_clock_says() -> None:
    assert show_clock(clock(), NOW).text == "due in 6 h"
    assert show_clock(clock(), NOW).title == "final response", "a clock without a title shows its name"
    late = show_clock(clock(due_at=NOW - timedelta(minutes=25)), NOW)
    assert (late.text, late.label, late.due_at) == ("was due 25 min ago", "breached", NOW - timedelta(minutes=25))
    paused = show_clock(clock(state="paused", due_at=None, used_seconds=3 * 3600 + 1800), NOW)
    assert paused.text == "paused, 4 h 30 min of working time left" and paused.due_at is None
    met = show_clock(clock(state="stopped", stopped_at=NOW - H), NOW)
    assert (met.text, met.label) == ("stopped 2026-03-02 11:00", "met")
    assert worst([met, paused]) == "ok" and worst([paused, late]) == "breached"


def test_spans_read_in_their_two_largest_units() -> None:
    assert [span(timedelta(seconds=s)) for s in (20, 60, 3600, 3660 * 2, 86400 * 3, 86400 * 2 + 7200)] == [
        "under a minute", "1 min", "1 h", "2 h 2 min", "3 d", "2 d 2 h"]
    assert until(NOW + 90 * timedelta(minutes=1), NOW) == "in 1 h 30 min"
    assert until(NOW - timedelta(days=2), NOW) == "2 d ago"
