"""Durations, opening checks and the calendar's own validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from casestore.errors import CaseStoreError
from casestore.work.calendar import (
    BusinessCalendar,
    CalendarError,
    due,
    is_working_time,
    next_opening,
    parse_duration,
    working_time_between,
)
from tests.casestore.work.calendars import ALWAYS, ENGLAND, LONDON, NIGHTS_LONDON, SPLIT, at, hm, weekdays

H = timedelta(hours=1)


@pytest.mark.parametrize(("text", "calendar", "expected"), [
    ("4h", ENGLAND, 4 * H),
    ("30m", ENGLAND, timedelta(minutes=30)),
    ("5d", ENGLAND, 40 * H),
    ("1d 4h", ENGLAND, 12 * H),
    ("4h30m", ENGLAND, timedelta(hours=4, minutes=30)),
    ("2w", ENGLAND, 80 * H),
    ("1w", SPLIT, 35 * H),
    ("1d", SPLIT, 7 * H),
    ("1w", ALWAYS, 168 * H),
    ("  2D ", ENGLAND, 16 * H),
    ("0m", ENGLAND, timedelta(0)),
    ("1w 2d 3h 4m", ENGLAND, timedelta(hours=40 + 16 + 3, minutes=4)),
    ("90m", None, timedelta(minutes=90)),
])
def test_parse_duration(text: str, calendar: BusinessCalendar | None, expected: timedelta) -> None:
    assert parse_duration(text, calendar) == expected


@pytest.mark.parametrize(("text", "calendar", "says"), [
    ("", ENGLAND, "empty duration"),
    ("   ", ENGLAND, "empty duration"),
    ("4", ENGLAND, "not understood"),
    ("4x", ENGLAND, "unknown unit 'x'"),
    ("h4", ENGLAND, "not understood"),
    ("4h 4h", ENGLAND, "'h' twice"),
    ("-4h", ENGLAND, "not understood"),
    ("1.5d", ENGLAND, "not understood"),
    ("4h then some", ENGLAND, "not understood at 'then some'"),
    ("2s", ENGLAND, "unknown unit 's'"),
    ("1d", None, "unknown unit 'd'"),
])
def test_parse_duration_refuses(text: str, calendar: BusinessCalendar | None, says: str) -> None:
    with pytest.raises(CalendarError, match=r"use whole numbers with units|add them up") as caught:
        parse_duration(text, calendar)
    assert says in str(caught.value)


def test_a_week_is_the_same_time_next_week_on_an_ordinary_week() -> None:
    start = at(LONDON, 2026, 1, 6, 11)
    assert due(start, parse_duration("1w", ENGLAND), ENGLAND) == at(LONDON, 2026, 1, 13, 11)


def test_calendar_error_is_a_422_store_error() -> None:
    assert issubclass(CalendarError, CaseStoreError)
    assert (CalendarError.http_status, CalendarError.exit_code, CalendarError.retryable) == (422, 2, False)


@pytest.mark.parametrize(("when", "working"), [
    (at(LONDON, 2026, 1, 6, 9), True),
    (at(LONDON, 2026, 1, 6, 16, 59), True),
    (at(LONDON, 2026, 1, 6, 17), False),
    (at(LONDON, 2026, 1, 6, 8, 59), False),
    (at(LONDON, 2026, 1, 10, 12), False),
    (at(LONDON, 2026, 4, 6, 12), False),
])
def test_is_working_time(when: datetime, working: bool) -> None:
    assert is_working_time(when, ENGLAND) is working


@pytest.mark.parametrize(("calendar", "when", "opening"), [
    (ENGLAND, at(LONDON, 2026, 1, 10, 12), at(LONDON, 2026, 1, 12, 9)),
    (ENGLAND, at(LONDON, 2026, 1, 6, 10), at(LONDON, 2026, 1, 6, 10)),
    (ENGLAND, at(LONDON, 2026, 1, 6, 17), at(LONDON, 2026, 1, 7, 9)),
    (ENGLAND, at(LONDON, 2026, 12, 24, 18), at(LONDON, 2026, 12, 29, 9)),
    (SPLIT, at(LONDON, 2026, 1, 6, 12, 45), at(LONDON, 2026, 1, 6, 13, 30)),
    (NIGHTS_LONDON, at(LONDON, 2026, 3, 28, 4), at(LONDON, 2026, 3, 29, 0, 30)),
])
def test_next_opening(calendar: BusinessCalendar, when: datetime, opening: datetime) -> None:
    assert next_opening(when, calendar) == opening


@pytest.mark.parametrize("call", [
    lambda t: due(t, H, ENGLAND),
    lambda t: working_time_between(t, t, ENGLAND),
    lambda t: working_time_between(datetime(2026, 1, 1, tzinfo=UTC), t, ENGLAND),
    lambda t: is_working_time(t, ENGLAND),
    lambda t: next_opening(t, ENGLAND),
])
def test_naive_datetimes_are_refused(call: Any) -> None:
    with pytest.raises(CalendarError, match="naive datetime 2026-01-06T10:00:00: give a timezone-aware"):
        call(datetime(2026, 1, 6, 10))


def test_negative_duration_is_refused() -> None:
    with pytest.raises(CalendarError, match="negative duration"):
        due(at(LONDON, 2026, 1, 6, 10), -H, ENGLAND)


def test_day_length_defaults_to_monday_then_8h() -> None:
    short_monday = {0: [hm("10:00-14:00")], 1: [hm("09:00-17:00")]}
    assert BusinessCalendar(name="m", timezone="UTC", hours=short_monday).day_length == 4 * H
    assert BusinessCalendar(name="w", timezone="UTC", hours={5: [hm("10:00-12:00")]}).day_length == 8 * H
    given = BusinessCalendar(name="g", timezone="UTC", hours=weekdays("09:00-17:00"), day_length=7 * H)
    assert parse_duration("2d", given) == 14 * H


def test_hours_on_applies_holidays_and_extra_days() -> None:
    assert ENGLAND.hours_on(date(2026, 4, 6)) == ()
    assert ENGLAND.hours_on(date(2026, 4, 7)) == ((time(9), time(17)),)
    assert SPLIT.hours_on(date(2026, 1, 6)) == (hm("09:00-12:30"), hm("13:30-17:00"))


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-timezone", {"timezone": "Europe/Londres"}, "unknown timezone 'Europe/Londres'"),
    ("unknown-country", {"country": "XX"}, "unknown holiday country 'XX'"),
    ("unknown-subdivision", {"country": "GB", "subdivision": "XYZ"}, "unknown subdivision 'XYZ' of GB: use one of"),
    ("subdivision-without-country", {"subdivision": "ENG"}, "needs a country"),
    ("end-before-start", {"hours": {0: [hm("17:00-09:00")]}}, "end before they start"),
    ("overlap", {"hours": {0: [hm("09:00-13:00"), hm("12:00-17:00")]}}, "overlap"),
    ("no-working-weekday", {"hours": {0: []}}, "no working hours on any weekday"),
    ("weekday-7", {"hours": {7: [hm("09:00-17:00")]}}, "weekdays are 0 (Monday) to 6"),
    ("extra-saturday-without-hours", {"extra_working_days": {date(2026, 1, 10): []}}, "is a Saturday"),
    ("holiday-and-working", {"extra_holidays": {date(2026, 1, 6)}, "extra_working_days": {date(2026, 1, 6): []}},
     "both an extra holiday and an extra working day"),
    ("negative-day-length", {"day_length": -H}, "day_length must be positive"),
]


@pytest.mark.parametrize(("change", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_calendar_validation(change: dict[str, Any], says: str) -> None:
    fields: dict[str, Any] = {"name": "t", "timezone": "Europe/London", "hours": weekdays("09:00-17:00")} | change
    with pytest.raises(CalendarError) as caught:
        BusinessCalendar(**fields)
    assert says in str(caught.value)


def test_touching_intervals_are_one_stretch() -> None:
    cal = BusinessCalendar(name="t", timezone="UTC", hours={0: [hm("09:00-12:00"), hm("12:00-17:00")]})
    start = datetime(2026, 1, 5, 11, tzinfo=UTC)
    assert due(start, 2 * H, cal) == datetime(2026, 1, 5, 13, tzinfo=UTC)
    assert is_working_time(datetime(2026, 1, 5, 12, tzinfo=UTC), cal)
