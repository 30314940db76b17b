"""``due()`` and ``working_time_between()`` on concrete business-calendar situations, each worked out by hand.

2026: Good Friday 3 April, Easter Monday 6 April; Christmas on a Friday, so Boxing Day (a Saturday)
is observed on Monday 28 December.  2027: Christmas and Boxing Day on a weekend, observed on
Monday 27 and Tuesday 28.  Clocks change in London on 29 March and 25 October 2026, in New York on
8 March and 1 November 2026.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casestore.work.calendar import BusinessCalendar, due, working_time_between
from tests.casestore.work.calendars import (
    ALWAYS,
    BAVARIA,
    BERLIN,
    CHRISTMAS_ROTA,
    ENGLAND,
    LONDON,
    NEW_YORK,
    NEW_YORK_OFFICE,
    NIGHTS_LONDON,
    NIGHTS_NEW_YORK,
    SPLIT,
    at,
)

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(hours=8)

CASES = [
    # (id, calendar, start, duration, expected)
    ("within-a-day", ENGLAND, at(LONDON, 2026, 1, 6, 10), 2 * H, at(LONDON, 2026, 1, 6, 12)),
    ("lands-exactly-at-closing", ENGLAND, at(LONDON, 2026, 1, 6, 15), 2 * H, at(LONDON, 2026, 1, 6, 17)),
    ("spills-into-next-morning", ENGLAND, at(LONDON, 2026, 1, 6, 16), 2 * H, at(LONDON, 2026, 1, 7, 10)),
    ("friday-over-the-weekend", ENGLAND, at(LONDON, 2026, 1, 9, 16), 2 * H, at(LONDON, 2026, 1, 12, 10)),
    ("starts-on-saturday", ENGLAND, at(LONDON, 2026, 1, 10, 12), H, at(LONDON, 2026, 1, 12, 10)),
    ("starts-on-sunday-night", ENGLAND, at(LONDON, 2026, 1, 11, 23, 59), 30 * M, at(LONDON, 2026, 1, 12, 9, 30)),
    ("starts-before-opening", ENGLAND, at(LONDON, 2026, 1, 6, 7), H, at(LONDON, 2026, 1, 6, 10)),
    ("starts-after-closing", ENGLAND, at(LONDON, 2026, 1, 6, 19), H, at(LONDON, 2026, 1, 7, 10)),
    ("starts-exactly-at-closing", ENGLAND, at(LONDON, 2026, 1, 6, 17), 30 * M, at(LONDON, 2026, 1, 7, 9, 30)),
    ("whole-day-from-opening", ENGLAND, at(LONDON, 2026, 1, 6, 9), D, at(LONDON, 2026, 1, 6, 17)),
    ("five-days-monday-to-friday", ENGLAND, at(LONDON, 2026, 1, 5, 9), 5 * D, at(LONDON, 2026, 1, 9, 17)),
    ("one-minute-before-closing", ENGLAND, at(LONDON, 2026, 1, 6, 16, 59), 2 * M, at(LONDON, 2026, 1, 7, 9, 1)),
    ("easter-good-friday-and-monday", ENGLAND, at(LONDON, 2026, 4, 2, 16), 2 * H, at(LONDON, 2026, 4, 7, 10)),
    ("starts-on-easter-monday", ENGLAND, at(LONDON, 2026, 4, 6, 10), H, at(LONDON, 2026, 4, 7, 10)),
    ("christmas-2026-boxing-day-substitute", ENGLAND, at(LONDON, 2026, 12, 24, 16), 2 * H,
     at(LONDON, 2026, 12, 29, 10)),
    ("christmas-2027-both-substitutes", ENGLAND, at(LONDON, 2027, 12, 24, 16), 2 * H, at(LONDON, 2027, 12, 29, 10)),
    ("new-year-2027-on-friday", ENGLAND, at(LONDON, 2026, 12, 31, 16), 2 * H, at(LONDON, 2027, 1, 4, 10)),
    ("twenty-days-through-december", ENGLAND, at(LONDON, 2026, 12, 1, 9), 20 * D, at(LONDON, 2026, 12, 30, 17)),
    ("two-weeks-across-the-year-end", ENGLAND, at(LONDON, 2026, 12, 21, 9), 10 * D, at(LONDON, 2027, 1, 6, 17)),
    ("a-working-year", ENGLAND, at(LONDON, 2026, 1, 2, 9), 253 * D, at(LONDON, 2026, 12, 31, 17)),
    ("office-hours-over-spring-forward", ENGLAND, at(LONDON, 2026, 3, 27, 16), 2 * H, at(LONDON, 2026, 3, 30, 10)),
    ("office-hours-over-fall-back", ENGLAND, at(LONDON, 2026, 10, 23, 16), 2 * H, at(LONDON, 2026, 10, 26, 10)),
    # 00:30-03:30 every day: the spring Sunday loses its skipped hour, the autumn Sunday repeats one.
    ("nights-spring-whole-shift-is-2h", NIGHTS_LONDON, at(LONDON, 2026, 3, 29, 0, 30), 2 * H,
     at(LONDON, 2026, 3, 29, 3, 30)),
    ("nights-spring-1h-jumps-the-gap", NIGHTS_LONDON, at(LONDON, 2026, 3, 29, 0, 30), H,
     at(LONDON, 2026, 3, 29, 2, 30)),
    ("nights-spring-overflow-to-monday", NIGHTS_LONDON, at(LONDON, 2026, 3, 29, 0, 30), 150 * M,
     at(LONDON, 2026, 3, 30, 1)),
    ("nights-autumn-whole-shift-is-4h", NIGHTS_LONDON, at(LONDON, 2026, 10, 25, 0, 30), 4 * H,
     at(LONDON, 2026, 10, 25, 3, 30)),
    ("nights-autumn-first-1-30", NIGHTS_LONDON, at(LONDON, 2026, 10, 25, 0, 30), H,
     at(LONDON, 2026, 10, 25, 1, 30, fold=0)),
    ("nights-autumn-second-1-30", NIGHTS_LONDON, at(LONDON, 2026, 10, 25, 0, 30), 2 * H,
     at(LONDON, 2026, 10, 25, 1, 30, fold=1)),
    ("nights-autumn-start-in-repeated-hour", NIGHTS_LONDON, at(LONDON, 2026, 10, 25, 1, 15, fold=1), 135 * M,
     at(LONDON, 2026, 10, 25, 3, 30)),
    ("nights-autumn-overflow-to-monday", NIGHTS_LONDON, at(LONDON, 2026, 10, 25, 0, 30), 270 * M,
     at(LONDON, 2026, 10, 26, 1)),
    ("nights-new-york-spring", NIGHTS_NEW_YORK, at(NEW_YORK, 2026, 3, 8, 0, 30), 2 * H,
     at(NEW_YORK, 2026, 3, 8, 3, 30)),
    ("nights-new-york-autumn", NIGHTS_NEW_YORK, at(NEW_YORK, 2026, 11, 1, 0, 30), 4 * H,
     at(NEW_YORK, 2026, 11, 1, 3, 30)),
    ("nights-new-york-just-after-the-gap", NIGHTS_NEW_YORK, at(NEW_YORK, 2026, 3, 8, 3), 30 * M,
     at(NEW_YORK, 2026, 3, 8, 3, 30)),
    ("new-york-thanksgiving", NEW_YORK_OFFICE, at(NEW_YORK, 2026, 11, 25, 16), 2 * H, at(NEW_YORK, 2026, 11, 27, 10)),
    ("new-york-independence-day-observed-friday", NEW_YORK_OFFICE, at(NEW_YORK, 2026, 7, 2, 16), 2 * H,
     at(NEW_YORK, 2026, 7, 6, 10)),
    ("new-york-office-over-spring-forward", NEW_YORK_OFFICE, at(NEW_YORK, 2026, 3, 6, 16), 2 * H,
     at(NEW_YORK, 2026, 3, 9, 10)),
    ("new-york-office-over-fall-back", NEW_YORK_OFFICE, at(NEW_YORK, 2026, 10, 30, 16), 2 * H,
     at(NEW_YORK, 2026, 11, 2, 10)),
    ("bavaria-corpus-christi", BAVARIA, at(BERLIN, 2026, 6, 3, 16), 2 * H, at(BERLIN, 2026, 6, 5, 10)),
    ("england-works-on-corpus-christi", ENGLAND, at(LONDON, 2026, 6, 3, 16), 2 * H, at(LONDON, 2026, 6, 4, 10)),
    ("split-day-over-lunch", SPLIT, at(LONDON, 2026, 1, 6, 12), H, at(LONDON, 2026, 1, 6, 14)),
    ("split-day-lands-at-lunch", SPLIT, at(LONDON, 2026, 1, 6, 11, 30), H, at(LONDON, 2026, 1, 6, 12, 30)),
    ("split-day-starts-at-lunch", SPLIT, at(LONDON, 2026, 1, 6, 13), 30 * M, at(LONDON, 2026, 1, 6, 14)),
    ("split-day-whole-day-is-7h", SPLIT, at(LONDON, 2026, 1, 6, 9), 7 * H, at(LONDON, 2026, 1, 6, 17)),
    ("always-open-over-a-weekend", ALWAYS, at(LONDON, 2026, 1, 9, 23), 2 * H, at(LONDON, 2026, 1, 10, 1)),
    ("always-open-24h-over-spring-forward", ALWAYS, at(LONDON, 2026, 3, 28, 23), 24 * H, at(LONDON, 2026, 3, 30, 0)),
    ("always-open-24h-over-fall-back", ALWAYS, at(LONDON, 2026, 10, 24, 23), 24 * H, at(LONDON, 2026, 10, 25, 22)),
    ("extra-holiday-on-christmas-eve", CHRISTMAS_ROTA, at(LONDON, 2026, 12, 23, 16), 2 * H,
     at(LONDON, 2026, 12, 28, 10)),
    ("extra-working-saturday", CHRISTMAS_ROTA, at(LONDON, 2026, 12, 18, 16), 2 * H, at(LONDON, 2026, 12, 19, 11)),
    ("after-hours-on-extra-saturday", CHRISTMAS_ROTA, at(LONDON, 2026, 12, 19, 15), H, at(LONDON, 2026, 12, 21, 10)),
    ("start-given-in-another-zone", ENGLAND, datetime(2026, 1, 6, 4, tzinfo=NEW_YORK), H, at(LONDON, 2026, 1, 6, 10)),
    ("zero-outside-hours-is-start", ENGLAND, at(LONDON, 2026, 1, 10, 12), timedelta(0), at(LONDON, 2026, 1, 10, 12)),
    ("zero-in-hours-is-start", ENGLAND, at(LONDON, 2026, 1, 6, 10), timedelta(0), at(LONDON, 2026, 1, 6, 10)),
    ("sub-second-precision", ENGLAND, at(LONDON, 2026, 1, 6, 16, 59), timedelta(minutes=1, microseconds=1),
     at(LONDON, 2026, 1, 7, 9) + timedelta(microseconds=1)),
]


@pytest.mark.parametrize(("calendar", "start", "duration", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_due(calendar: BusinessCalendar, start: datetime, duration: timedelta, expected: datetime) -> None:
    result = due(start, duration, calendar)
    assert result == expected.astimezone(UTC)  # astimezone: an ambiguous wall time never equals another zone's
    assert result.tzinfo is UTC
    assert working_time_between(start, result, calendar) == duration


def test_case_ids_are_distinct() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 50


BETWEEN = [
    ("monday-opening-to-friday-closing", ENGLAND, at(LONDON, 2026, 1, 5, 9), at(LONDON, 2026, 1, 9, 17), 40 * H),
    ("easter-thursday-to-tuesday", ENGLAND, at(LONDON, 2026, 4, 2, 9), at(LONDON, 2026, 4, 7, 9), 8 * H),
    ("whole-weekend-is-nothing", ENGLAND, at(LONDON, 2026, 1, 10), at(LONDON, 2026, 1, 12), timedelta(0)),
    ("end-before-start-is-nothing", ENGLAND, at(LONDON, 2026, 1, 7, 12), at(LONDON, 2026, 1, 6, 12), timedelta(0)),
    ("lunch-not-counted", SPLIT, at(LONDON, 2026, 1, 6, 12), at(LONDON, 2026, 1, 6, 14), H),
    ("spring-sunday-nights-2h", NIGHTS_LONDON, at(LONDON, 2026, 3, 29), at(LONDON, 2026, 3, 30), 2 * H),
    ("autumn-sunday-nights-4h", NIGHTS_LONDON, at(LONDON, 2026, 10, 25), at(LONDON, 2026, 10, 26), 4 * H),
    ("always-open-spring-day-23h", ALWAYS, at(LONDON, 2026, 3, 29), at(LONDON, 2026, 3, 30), 23 * H),
    ("a-year-of-england", ENGLAND, at(LONDON, 2026, 1, 1), at(LONDON, 2027, 1, 1), 253 * D),
]


@pytest.mark.parametrize(("calendar", "a", "b", "expected"), [c[1:] for c in BETWEEN], ids=[c[0] for c in BETWEEN])
def test_working_time_between(calendar: BusinessCalendar, a: datetime, b: datetime, expected: timedelta) -> None:
    assert working_time_between(a, b, calendar) == expected


def test_pausing_a_clock_keeps_the_used_budget() -> None:
    """A 3-day clock paused after 1 day 2 h of work resumes with 1 day 6 h left, whenever it resumes."""
    started, paused, resumed = at(LONDON, 2026, 1, 5, 9), at(LONDON, 2026, 1, 6, 11), at(LONDON, 2026, 1, 14, 15)
    used = working_time_between(started, paused, ENGLAND)
    assert used == 10 * H
    assert due(resumed, 3 * D - used, ENGLAND) == at(LONDON, 2026, 1, 16, 13)
