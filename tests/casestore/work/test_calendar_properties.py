"""Laws of the SLA arithmetic, checked by hypothesis on every shared calendar, starts spread over 2025-2028
and clustered around clock changes, holidays and year ends, with exact microsecond arithmetic.

The oracle test checks ``due`` against the definition itself: step minute by minute through UTC and count
the minutes whose local wall time lies within that date's hours (``hours_on``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casestore.work.calendar import (
    BusinessCalendar,
    CalendarError,
    Timeline,
    due,
    is_working_time,
    working_time_between,
)
from tests.casestore.work.calendars import (
    ALWAYS,
    BAVARIA,
    CHRISTMAS_ROTA,
    ENGLAND,
    NEW_YORK_OFFICE,
    NIGHTS_LONDON,
    NIGHTS_NEW_YORK,
    SPLIT,
)

CALENDARS = [ENGLAND, SPLIT, NIGHTS_LONDON, NIGHTS_NEW_YORK, ALWAYS, NEW_YORK_OFFICE, BAVARIA, CHRISTMAS_ROTA]
LAWS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
US = timedelta(microseconds=1)
ANCHORS = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC),
           datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
           datetime(2026, 4, 3, 12, tzinfo=UTC), datetime(2026, 12, 24, 17, tzinfo=UTC),
           datetime(2027, 12, 31, 17, tzinfo=UTC)]

calendars = st.sampled_from(CALENDARS)
anywhere = st.integers(0, 4 * 365 * 86_400_000_000).map(lambda us: datetime(2025, 1, 1, tzinfo=UTC) + us * US)
near_anchor = st.tuples(st.sampled_from(ANCHORS), st.integers(-3 * 86_400, 3 * 86_400)).map(
    lambda a: a[0] + timedelta(seconds=a[1]))
starts = st.one_of(anywhere, near_anchor)
durations = st.one_of(
    st.integers(0, 20 * 8 * 3_600_000_000).map(lambda us: us * US),  # up to four working weeks, any microsecond
    st.integers(0, 200).map(lambda k: k * timedelta(minutes=30)),  # on the half hour: lands on boundaries
)


@LAWS
@given(calendars, starts, durations, durations)
def test_due_composes(calendar: BusinessCalendar, t: datetime, a: timedelta, b: timedelta) -> None:
    assert due(due(t, a, calendar), b, calendar) == due(t, a + b, calendar)


@LAWS
@given(calendars, starts, durations)
def test_working_time_up_to_due_is_the_duration(calendar: BusinessCalendar, t: datetime, d: timedelta) -> None:
    end = due(t, d, calendar)
    assert end >= t
    assert working_time_between(t, end, calendar) == d
    if d:
        assert is_working_time(end - US, calendar)  # the last microsecond counted was working time


@LAWS
@given(calendars, starts, starts, durations, durations)
def test_due_is_monotonic(calendar: BusinessCalendar, t1: datetime, t2: datetime, d1: timedelta,
                          d2: timedelta) -> None:
    t1, t2 = sorted((t1, t2))
    d1, d2 = sorted((d1, d2))
    assert due(t1, d1, calendar) <= due(t2, d1, calendar)
    assert due(t1, d1, calendar) <= due(t1, d2, calendar)


@LAWS
@given(calendars, starts, starts, starts)
def test_working_time_adds_up(calendar: BusinessCalendar, a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert working_time_between(a, b, calendar) + working_time_between(b, c, calendar) == \
        working_time_between(a, c, calendar)
    assert due(a, working_time_between(a, b, calendar), calendar) <= b


def _working_by_definition(u: datetime, calendar: BusinessCalendar) -> bool:
    local = u.astimezone(calendar._tz)
    wall = local.replace(tzinfo=None)
    for start, end in calendar.hours_on(local.date()):
        opens = datetime.combine(local.date(), start)
        closes = datetime.combine(local.date(), end) if end.hour or end.minute else opens.replace(
            hour=0, minute=0) + timedelta(days=1)
        if opens <= wall < closes:
            return True
    return False


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars, st.one_of(anywhere, near_anchor), st.integers(0, 2 * 8 * 60))
def test_due_matches_minute_by_minute_definition(calendar: BusinessCalendar, t: datetime, minutes: int) -> None:
    t = t.replace(second=0, microsecond=0)
    u, left = t, minutes
    while left:
        if _working_by_definition(u, calendar):
            left -= 1
        u += timedelta(minutes=1)
    expected = u
    assert due(t, timedelta(minutes=minutes), calendar) == expected


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@LAWS
@given(calendars, st.lists(st.tuples(starts, durations), min_size=1, max_size=8))
def test_a_timeline_gives_the_same_due_times_in_any_order(calendar: BusinessCalendar,
                                                           clocks: list[tuple[datetime, timedelta]]) -> None:
    # a fresh timeline per example, asked in the given order: it restarts for an earlier start and
    # grows for a later one or a longer duration, and must agree with ``due`` every time
    timeline = Timeline(calendar)
    for t, d in clocks:
        assert _EPOCH + timeline.due_us((t - _EPOCH) // US, d // US) * US == due(t, d, calendar)


def test_a_timeline_refuses_what_due_refuses() -> None:
    timeline = Timeline(ENGLAND)
    with pytest.raises(CalendarError, match="negative duration"):
        timeline.due_us(0, -1)
    assert timeline.due_us(123, 0) == 123
