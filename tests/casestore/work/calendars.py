"""Calendars the calendar tests share, and ``at()`` for wall-clock instants in a zone."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from casestore.work.calendar import BusinessCalendar, Interval

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def hm(text: str) -> Interval:
    start, end = text.split("-")
    h1, m1 = map(int, start.split(":"))
    h2, m2 = map(int, end.split(":"))
    return time(h1, m1), time(0) if (h2, m2) == (24, 0) else time(h2, m2)


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold)


def weekdays(*intervals: str) -> dict[int, list[Interval]]:
    return {i: [hm(x) for x in intervals] for i in range(5)}


def every_day(*intervals: str) -> dict[int, list[Interval]]:
    return {i: [hm(x) for x in intervals] for i in range(7)}


ENGLAND = BusinessCalendar(name="eng", timezone="Europe/London", hours=weekdays("09:00-17:00"),
                           country="GB", subdivision="ENG")
SPLIT = BusinessCalendar(name="split", timezone="Europe/London", hours=weekdays("09:00-12:30", "13:30-17:00"),
                         country="GB", subdivision="ENG")
NIGHTS_LONDON = BusinessCalendar(name="nights-lon", timezone="Europe/London", hours=every_day("00:30-03:30"))
NIGHTS_NEW_YORK = BusinessCalendar(name="nights-ny", timezone="America/New_York", hours=every_day("00:30-03:30"))
ALWAYS = BusinessCalendar(name="24x7", timezone="Europe/London", hours=every_day("00:00-24:00"))
NEW_YORK_OFFICE = BusinessCalendar(name="ny", timezone="America/New_York", hours=weekdays("09:00-17:00"),
                                   country="US", subdivision="NY")
BAVARIA = BusinessCalendar(name="by", timezone="Europe/Berlin", hours=weekdays("09:00-17:00"),
                           country="DE", subdivision="BY")
CHRISTMAS_ROTA = BusinessCalendar(
    name="rota", timezone="Europe/London", hours=weekdays("09:00-17:00"), country="GB", subdivision="ENG",
    extra_holidays={date(2026, 12, 24)},
    extra_working_days={date(2026, 12, 19): [hm("10:00-14:00")], date(2026, 12, 28): []},
)
