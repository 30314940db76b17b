"""Business calendars and SLA arithmetic: when is a duration of working time up?  Pure: no database.

A ``BusinessCalendar`` says when work happens: weekly working hours in a timezone (several
intervals a day allowed; a weekday with none is not worked), public holidays from the ``holidays``
package (country and optional subdivision, with its substitute "observed" days), extra holidays,
and extra working days (worked with given hours, or with the standard hours of their weekday).

Conventions (the SLA clock relies on them; tests check each):

* Working time is a set of real instants.  An interval 09:00-17:00 covers the instants at which the
  calendar's wall clock shows a time in [09:00, 17:00) on a working date.  So on a DST day, hours
  that include the skipped hour are that much shorter (00:30-03:30 on Europe/London's spring
  Sunday is 2 h of working time) and hours that include the repeated hour are longer (4 h in
  October).  A boundary that falls in the skipped hour takes effect when the clock jumps.  The end
  time 00:00 means midnight at the end of the day (24:00), so 00:00-00:00 is a whole day.
* ``due(t, d)`` is the *earliest* instant u >= t such that d of working time lies in [t, u).  Hence
  a due time that lands exactly at closing time *is* the closing time (17:00 Friday, not 09:00
  Monday); ``due(t, 0) == t`` for any t, in or out of hours; and a start outside working hours
  counts from the next opening.  With this convention ``due(due(t, a), b) == due(t, a + b)`` for
  all a, b >= 0, and ``working_time_between(t, due(t, d)) == d``.  Arithmetic is exact, in integer
  microseconds.  Results are aware UTC datetimes; naive datetimes are refused.
* In duration strings (``parse_duration``) "d" is ``calendar.day_length`` of working time (by
  default the calendar's Monday hours, or 8 h if Monday is not worked), not a calendar day; "w" is
  one standard week of working time (the sum of the weekly hours: 40 h = 5 d for Mon-Fri 9-17, but
  168 h = 7 d on a 24x7 calendar).  So on an ordinary week ``due(t, 1w)`` is the same time a week
  later; "5d" and "1w" differ where the days do (a short Friday, a worked Saturday).

A calendar is immutable once built (it compares by identity), apart from its caches: per local
date, that date's working intervals as UTC microseconds (built once, with the holiday set of its
year), linked to the next date, so ``due`` walks whole days, never minutes (~5 CPU-us a call for
spans of a few weeks; ``benchmarks/calendar_bench.py``).  The cache grows by one small entry per
distinct date touched.  Timezone transitions are found by bisection per date; zones that change
offset twice within one day are not supported (none does).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from casestore.errors import CaseStoreError

Interval = tuple[time, time]
"""Wall-clock working hours (start, end); end 00:00 means 24:00."""

_US = timedelta(microseconds=1)
_SECOND = 1_000_000
_DAY = 86_400 * _SECOND
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_IDLE_DAYS = 3 * 366  # this many dates in a row without working time: the calendar never opens again
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarError(CaseStoreError):
    """A business calendar, a duration or a time given to the SLA arithmetic is unusable; fix it."""

    http_status = 422
    exit_code = 2


def _time_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _SECOND + t.microsecond


def _length_us(interval: Interval) -> int:
    start, end = interval
    return (_time_us(end) or _DAY) - _time_us(start)


def check_intervals(intervals: Sequence[Interval]) -> tuple[Interval, ...]:
    """Sorted working intervals of one day; ``CalendarError`` if one ends before it starts or two overlap."""
    out = sorted((start, end) for start, end in intervals)
    for start, end in out:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise CalendarError(f"working hours {start}-{end}: give wall-clock times without a timezone")
        if _length_us((start, end)) <= 0:
            raise CalendarError(f"working hours {start:%H:%M}-{end:%H:%M} end before they start (write 24:00 as 00:00)")
    for (s1, e1), (s2, e2) in pairwise(out):
        if _time_us(s2) < (_time_us(e1) or _DAY):
            raise CalendarError(f"working hours {s1:%H:%M}-{e1:%H:%M} and {s2:%H:%M}-{e2:%H:%M} overlap")
    return tuple(out)


def holiday_calendar(country: str, subdivision: str | None) -> holidays.HolidayBase:
    """The ``holidays`` package's calendar; ``CalendarError`` naming the valid codes if unknown."""
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise CalendarError(f"unknown holiday country {country!r}: use an ISO 3166-1 alpha-2 code such as GB, US or DE")
    if subdivision is not None and subdivision not in supported[country]:
        known = ", ".join(supported[country]) or "none"
        raise CalendarError(f"unknown subdivision {subdivision!r} of {country}: use one of {known}")
    return holidays.country_holidays(country, subdiv=subdivision)


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; ``CalendarError`` if there is none such."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"unknown timezone {name!r}: use an IANA name such as Europe/London") from exc


class _Day:
    """One local date's slice of the time line, [lo, hi) in UTC microseconds, and its working intervals."""

    __slots__ = ("hi", "intervals", "lo", "next", "ordinal", "total")

    def __init__(self, ordinal: int, lo: int, hi: int, intervals: tuple[tuple[int, int], ...]) -> None:
        self.ordinal, self.lo, self.hi, self.intervals = ordinal, lo, hi, intervals
        self.total = sum(e - s for s, e in intervals)
        self.next: _Day | None = None  # the following date, linked on first use


@dataclass(frozen=True, eq=False)
class BusinessCalendar:
    """When work happens.  ``hours`` maps weekday (0 = Monday .. 6 = Sunday) to working intervals;
    ``extra_working_days`` maps a date to its hours (empty: the standard hours of its weekday);
    ``day_length`` 0 (the default) means Monday's working time, or 8 h if Monday is not worked.
    The constructor validates everything and raises ``CalendarError``."""

    name: str
    timezone: str
    hours: Mapping[int, Sequence[Interval]]
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: Collection[date] = frozenset()
    extra_working_days: Mapping[date, Sequence[Interval]] = field(default_factory=dict)
    day_length: timedelta = timedelta(0)
    _tz: ZoneInfo = field(init=False, repr=False)
    _week: tuple[tuple[Interval, ...], ...] = field(init=False, repr=False)
    _holiday_years: dict[int, frozenset[date]] = field(init=False, repr=False, default_factory=dict)
    _days: dict[int, _Day] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "_tz", zone(self.timezone))
        if set(self.hours) - set(range(7)):
            raise CalendarError(f"calendar {self.name}: weekdays are 0 (Monday) to 6, not {sorted(self.hours)}")
        week = tuple(check_intervals(self.hours.get(i, ())) for i in range(7))
        if not any(week):
            raise CalendarError(f"calendar {self.name} has no working hours on any weekday: give at least one")
        put(self, "_week", week)
        put(self, "hours", MappingProxyType({i: week[i] for i in range(7) if week[i]}))
        if self.subdivision is not None and self.country is None:
            raise CalendarError(f"calendar {self.name}: a holiday subdivision needs a country")
        if self.country is not None:
            holiday_calendar(self.country, self.subdivision)
        put(self, "extra_holidays", frozenset(self.extra_holidays))
        extra: dict[date, tuple[Interval, ...]] = {}
        for day, given in self.extra_working_days.items():
            if day in self.extra_holidays:
                raise CalendarError(f"calendar {self.name}: {day} is both an extra holiday and an extra working day")
            hours = check_intervals(given) or week[day.weekday()]
            if not hours:
                raise CalendarError(
                    f"calendar {self.name}: extra working day {day} is a {_WEEKDAYS[day.weekday()]}, which has no "
                    "standard hours: give its hours"
                )
            extra[day] = hours
        put(self, "extra_working_days", MappingProxyType(extra))
        if self.day_length < timedelta(0):
            raise CalendarError(f"calendar {self.name}: day_length must be positive")
        if not self.day_length:
            monday = sum(_length_us(i) for i in week[0])
            put(self, "day_length", timedelta(microseconds=monday) if monday else timedelta(hours=8))

    @property
    def week_length(self) -> timedelta:
        """The working time of a standard week: what "1w" means."""
        return timedelta(microseconds=sum(_length_us(i) for day in self._week for i in day))

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The working hours of a local date, holidays and extra days applied (empty: not worked)."""
        extra = self.extra_working_days.get(day)
        if extra is not None:
            return tuple(extra)
        if day in self.extra_holidays or day in self._holidays(day.year):
            return ()
        return self._week[day.weekday()]

    def _holidays(self, year: int) -> frozenset[date]:
        found = self._holiday_years.get(year)
        if found is None:
            found = frozenset()
            if self.country is not None:
                found = frozenset(holidays.country_holidays(self.country, subdiv=self.subdivision, years=year))
            self._holiday_years[year] = found
        return found

    def _day(self, ordinal: int) -> _Day:
        day = self._days.get(ordinal)
        if day is None:
            try:
                day = self._build(ordinal)
            except (OverflowError, ValueError) as exc:
                raise CalendarError(f"calendar {self.name}: date out of range (ordinal {ordinal})") from exc
            self._days[ordinal] = day
        return day

    def _after(self, day: _Day) -> _Day:
        following = day.next
        if following is None:
            following = day.next = self._day(day.ordinal + 1)
        return following

    def _day_at(self, when: datetime, instant: int) -> _Day:
        day = self._day(when.astimezone(self._tz).toordinal())
        while instant < day.lo:
            day = self._day(day.ordinal - 1)
        while instant >= day.hi:
            day = self._after(day)
        return day

    def _day_of(self, instant: int) -> _Day:
        """The local date whose slice holds ``instant`` (UTC microseconds)."""
        day = self._day(_EPOCH_ORDINAL + instant // _DAY)
        while instant < day.lo:
            day = self._day(day.ordinal - 1)
        while instant >= day.hi:
            day = self._after(day)
        return day

    def _build(self, ordinal: int) -> _Day:
        """The working instants between this date's local midnight and the next (first occurrences).

        Wall times of the neighbouring dates can fall in that slice when a DST change crosses
        midnight, so their hours are mapped too and clipped."""
        lo, hi = _midnight(ordinal, self._tz), _midnight(ordinal + 1, self._tz)
        segments = _offset_segments(self._tz, lo, hi)
        pieces: list[tuple[int, int]] = []
        for wall_ordinal in (ordinal - 1, ordinal, ordinal + 1):
            base = (wall_ordinal - _EPOCH_ORDINAL) * _DAY
            for start, end in self.hours_on(date.fromordinal(wall_ordinal)):
                ws, we = base + _time_us(start), base + (_time_us(end) or _DAY)
                for seg_lo, seg_hi, offset in segments:
                    a, b = max(ws - offset, seg_lo), min(we - offset, seg_hi)
                    if a < b:
                        pieces.append((a, b))
        merged: list[tuple[int, int]] = []
        for a, b in sorted(pieces):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return _Day(ordinal, lo, hi, tuple(merged))


def _midnight(ordinal: int, tz: ZoneInfo) -> int:
    d = date.fromordinal(ordinal)
    return (datetime(d.year, d.month, d.day, tzinfo=tz) - _EPOCH) // _US


def _offset(tz: ZoneInfo, second: int) -> int:
    offset = datetime.fromtimestamp(second, tz).utcoffset()
    assert offset is not None
    return offset // _US


def _offset_segments(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """[lo, hi) split where the UTC offset changes: (start, end, offset) in microseconds."""
    segments: list[tuple[int, int, int]] = []
    while lo < hi:
        first, last = lo // _SECOND, (hi - 1) // _SECOND
        offset = _offset(tz, first)
        if _offset(tz, last) == offset:
            segments.append((lo, hi, offset))
            break
        while last - first > 1:  # bisect to the first second with another offset
            mid = (first + last) // 2
            if _offset(tz, mid) == offset:
                first = mid
            else:
                last = mid
        segments.append((lo, last * _SECOND, offset))
        lo = last * _SECOND
    return segments


def _instant(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() is None:
        raise CalendarError(f"naive datetime {when.isoformat()}: give a timezone-aware datetime (e.g. in UTC)")
    return (when - _EPOCH) // _US


def _from_instant(instant: int) -> datetime:
    return _EPOCH + timedelta(microseconds=instant)


def instant_us(when: datetime) -> int:
    """An aware datetime as microseconds since the epoch (what ``Timeline`` works in)."""
    return _instant(when)


def from_us(instant: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _from_instant(instant)


def due(start: datetime, duration: timedelta, calendar: BusinessCalendar) -> datetime:
    """The earliest instant (UTC) by which ``duration`` of working time has elapsed since ``start``."""
    now = _instant(start)
    left = duration // _US
    if left < 0:
        raise CalendarError(f"negative duration {duration}: SLA durations are zero or more")
    if left == 0:
        return _from_instant(now)
    day = calendar._day_at(start, now)
    idle = 0
    while True:
        if day.total:
            idle = 0
            if now <= day.lo and left > day.total:
                left -= day.total
            else:
                for s, e in day.intervals:
                    if e <= now:
                        continue
                    if s < now:
                        s = now
                    if left <= e - s:
                        return _from_instant(s + left)
                    left -= e - s
        else:
            idle += 1
            if idle > _MAX_IDLE_DAYS:
                raise CalendarError(f"calendar {calendar.name} has no working time after {start.isoformat()}")
        day = day.next or calendar._after(day)


class Timeline:
    """One calendar's working intervals laid end to end, with the working time before each, for
    ``due`` on many clocks at once (a calendar change re-computing a million): in integer
    microseconds since the epoch, two binary searches a call instead of a walk over the dates, and
    no datetimes.  ``due_us(t, d) == instant(due(from_instant(t), d))`` for every t and d >= 0
    (a property test checks it).  It covers the dates asked about so far and grows as needed;
    like the calendar's own caches it is not for sharing between threads."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._first: _Day | None = None
        self._last: _Day | None = None
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._before: list[int] = []   # working time from the first date to the start of interval i
        self._through: list[int] = []  # ... to its end

    def due_us(self, start: int, duration: int) -> int:
        """``due`` in microseconds: the earliest instant by which ``duration`` of working time has
        elapsed since ``start``."""
        if duration < 0:
            raise CalendarError(f"negative duration {timedelta(microseconds=duration)}: SLA durations are zero or more")
        if duration == 0:
            return start
        target = self._worked(start) + duration
        j = bisect_left(self._through, target)
        while j == len(self._through):  # beyond the dates covered: add more
            self._grow(lambda: bool(self._through) and self._through[-1] >= target, start)
            j = bisect_left(self._through, target)
        return self._starts[j] + target - self._before[j]

    def _worked(self, instant: int) -> int:
        """Working time from the first date covered to ``instant`` (covering both)."""
        if self._first is None or instant < self._first.lo:
            self._restart(instant)
        last = self._last
        assert last is not None
        if instant >= last.hi:
            self._grow(lambda: self._last is not None and self._last.hi > instant, instant)
        i = bisect_right(self._starts, instant) - 1
        if i < 0:
            return 0
        return self._before[i] + min(instant, self._ends[i]) - self._starts[i]

    def _restart(self, instant: int) -> None:
        """Cover from a week before the date of ``instant`` (earlier starts are rarer that way)."""
        day = self.calendar._day_of(instant)
        first = self.calendar._day(day.ordinal - 7)
        self._first = self._last = first
        self._starts, self._ends, self._before, self._through = [], [], [], []
        self._add(first)

    def _add(self, day: _Day) -> None:
        worked = self._through[-1] if self._through else 0
        for s, e in day.intervals:
            self._starts.append(s)
            self._ends.append(e)
            self._before.append(worked)
            worked += e - s
            self._through.append(worked)
        self._last = day

    def _grow(self, enough: Callable[[], bool], since: int) -> None:
        idle = 0
        while True:
            last = self._last
            assert last is not None
            day = self.calendar._after(last)
            self._add(day)
            idle = 0 if day.total else idle + 1
            if idle > _MAX_IDLE_DAYS:
                raise CalendarError(f"calendar {self.calendar.name} has no working time after "
                                    f"{_from_instant(since).isoformat()}")
            if day.total and enough():
                return


def working_time_between(a: datetime, b: datetime, calendar: BusinessCalendar) -> timedelta:
    """Working time in [a, b); zero when b <= a.  ``working_time_between(t, due(t, d)) == d``."""
    lo, hi = _instant(a), _instant(b)
    if hi <= lo:
        return timedelta(0)
    day = calendar._day_at(a, lo)
    total = 0
    while day.lo < hi:
        if lo <= day.lo and day.hi <= hi:
            total += day.total
        else:
            for s, e in day.intervals:
                s, e = max(s, lo), min(e, hi)
                if s < e:
                    total += e - s
        day = day.next or calendar._after(day)
    return timedelta(microseconds=total)


def is_working_time(when: datetime, calendar: BusinessCalendar) -> bool:
    """Whether ``when`` lies in working hours (an opening instant does, a closing instant does not)."""
    now = _instant(when)
    return any(s <= now < e for s, e in calendar._day_at(when, now).intervals)


def next_opening(when: datetime, calendar: BusinessCalendar) -> datetime:
    """``when`` (in UTC) if it is working time, else the next instant at which work starts."""
    now = _instant(when)
    day = calendar._day_at(when, now)
    for _ in range(_MAX_IDLE_DAYS):
        for s, e in day.intervals:
            if now < e:
                return _from_instant(max(s, now))
        day = calendar._after(day)
    raise CalendarError(f"calendar {calendar.name} has no working time after {when.isoformat()}")


_TOKEN = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")


def parse_duration(text: str, calendar: BusinessCalendar | None) -> timedelta:
    """A duration string such as "4h", "30m", "5d", "1d 4h", "2w" as working time.

    Units: w (``calendar.week_length``), d (``calendar.day_length``), h, m; whole numbers, each unit
    at most once, in any order.  Without a calendar only h and m are allowed."""
    units = {"h": timedelta(hours=1), "m": timedelta(minutes=1)}
    if calendar is not None:
        units = {"w": calendar.week_length, "d": calendar.day_length} | units
    allowed = ", ".join(units)
    hint = f'use whole numbers with units {allowed}, e.g. "4h", "30m"' + (', "1d 4h"' if calendar else "")
    if not isinstance(text, str) or not text.strip():
        raise CalendarError(f"empty duration {text!r}: {hint}")
    total, seen, pos, lowered = timedelta(0), set(), 0, text.lower()
    while pos < len(lowered):
        match = _TOKEN.match(lowered, pos)
        if match is None:
            raise CalendarError(f"duration {text!r} is not understood at {text[pos:].strip()!r}: {hint}")
        number, unit = match.groups()
        if unit not in units:
            raise CalendarError(f"duration {text!r} has unknown unit {unit!r}: {hint}")
        if unit in seen:
            raise CalendarError(f"duration {text!r} gives {unit!r} twice: add them up")
        seen.add(unit)
        total += int(number) * units[unit]
        pos = match.end()
    return total
