"""Business calendars from YAML files: one file per calendar, named for it (``us-ny.yaml`` is "us-ny").

    timezone: Europe/London          # IANA name (required)
    country: GB                      # public holidays from the holidays package (optional)
    subdivision: ENG                 # optional, needs country
    hours:                           # weekdays not listed are not worked
      mon-fri: ["09:00-12:30", "13:30-17:00"]
      saturday: ["10:00-14:00"]      # monday..sunday, mon..sun, or a range such as mon-fri
    extra_holidays: [2026-12-24]
    extra_working_days:              # worked even on a weekend or holiday
      2026-12-27: ["10:00-14:00"]
      2026-12-28: []                 # [] = the standard hours of that weekday
    day_length: 7h30m                # what "1d" means; default: Monday's hours, or 8h

An end of 24:00 means midnight at the end of the day.  Every problem is refused with a
``CalendarFileError`` that names the file, the line and what to change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time, timedelta
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from casestore.work.calendar import (
    BusinessCalendar,
    CalendarError,
    Interval,
    check_intervals,
    holiday_calendar,
    parse_duration,
    zone,
)

SHIPPED_CALENDARS = Path(__file__).parent / "shipped" / "calendars"
"""The calendars that ship with casework: ``default`` (England) and ``us-ny``."""

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_KEYS = ("timezone", "country", "subdivision", "hours", "extra_holidays", "extra_working_days", "day_length")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_T = TypeVar("_T")


class CalendarFileError(CalendarError):
    """A calendar file is unusable; the message names the file and line."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


def load_calendars(folder: Path) -> dict[str, BusinessCalendar]:
    """Every ``*.yaml`` / ``*.yml`` calendar in ``folder``, by name (the file's stem)."""
    if not folder.is_dir():
        raise CalendarError(f"calendar folder {folder} does not exist: create it or point to another folder")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise CalendarError(f"calendar folder {folder} has no .yaml files: add one per calendar")
    calendars: dict[str, BusinessCalendar] = {}
    for path in files:
        if path.stem in calendars:
            raise CalendarFileError(path, 1, f"a second calendar named {path.stem!r}: keep one of the files")
        calendars[path.stem] = load_calendar_file(path)
    return calendars


def load_calendar_file(path: Path) -> BusinessCalendar:
    """One calendar file, validated; ``CalendarFileError`` names the line of the first problem."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise CalendarFileError(path, line, f"not valid YAML: {exc.problem}") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CalendarFileError(path, 1, f"cannot be read: {exc}") from exc
    return _Reader(path).calendar(root)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: Node | None, problem: str) -> CalendarFileError:
        return CalendarFileError(self.path, node.start_mark.line + 1 if node is not None else 1, problem)

    def checked(self, node: Node, make: Callable[[], _T]) -> _T:
        try:
            return make()
        except CalendarError as exc:
            raise self.fail(node, str(exc)) from exc

    def mapping(self, node: Node, what: str) -> list[tuple[ScalarNode, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping of keys to values")
        seen: set[str] = set()
        for key, _ in node.value:
            if not isinstance(key, ScalarNode):
                raise self.fail(key, f"{what}: keys must be plain values")
            if key.value in seen:
                raise self.fail(key, f"{what}: {key.value!r} is given twice")
            seen.add(key.value)
        return node.value

    def text(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or not node.value.strip():
            raise self.fail(node, f"{what} must be a non-empty text value")
        return str(node.value).strip()

    def day(self, node: Node, what: str) -> date:
        try:
            if isinstance(node, ScalarNode):
                return date.fromisoformat(node.value.strip())
        except ValueError:
            pass
        raise self.fail(node, f"{what}: {getattr(node, 'value', '?')!r} is not a date: write YYYY-MM-DD")

    def calendar(self, root: Node | None) -> BusinessCalendar:
        if root is None:
            raise self.fail(None, "the file is empty: give at least timezone and hours")
        fields = dict((key.value, (key, value)) for key, value in self.mapping(root, "a calendar"))
        for name, (key, _) in fields.items():
            if name not in _KEYS:
                raise self.fail(key, f"unknown key {name!r}: the keys are {', '.join(_KEYS)}")
        for required in ("timezone", "hours"):
            if required not in fields:
                raise self.fail(root, f"{required!r} is missing")
        tz_node = fields["timezone"][1]
        timezone = self.text(tz_node, "timezone")
        self.checked(tz_node, lambda: zone(timezone))
        country = subdivision = None
        if "country" in fields:
            country = self.text(fields["country"][1], "country").upper()
        if "subdivision" in fields:
            if country is None:
                raise self.fail(fields["subdivision"][0], "a subdivision needs a country: add country")
            subdivision = self.text(fields["subdivision"][1], "subdivision").upper()
        if country is not None:
            node = fields["subdivision"][1] if subdivision is not None else fields["country"][1]
            self.checked(node, lambda: holiday_calendar(country, subdivision))
        hours = self.weekly_hours(fields["hours"][1])
        extra_holidays = self.extra_holidays(fields["extra_holidays"][1]) if "extra_holidays" in fields else {}
        extra_working: dict[date, tuple[Interval, ...]] = {}
        if "extra_working_days" in fields:
            for key, value in self.mapping(fields["extra_working_days"][1], "extra_working_days"):
                day = self.day(key, "extra_working_days")
                if day in extra_holidays:
                    raise self.fail(key, f"{day} is also an extra holiday (line {extra_holidays[day]}): keep one")
                extra_working[day] = self.intervals(value, f"extra working day {day}")
                if not extra_working[day] and not hours.get(day.weekday()):
                    weekday = _DAYS[day.weekday()]
                    raise self.fail(key, f"{day} is a {weekday}, which has no standard hours: give its hours")
        day_length = timedelta(0)
        if "day_length" in fields:
            node = fields["day_length"][1]
            day_length = self.checked(node, lambda: parse_duration(self.text(node, "day_length"), None))
            if day_length <= timedelta(0):
                raise self.fail(node, "day_length must be more than zero")
        return self.checked(root, lambda: BusinessCalendar(
            name=self.path.stem, timezone=timezone, hours=hours, country=country, subdivision=subdivision,
            extra_holidays=frozenset(extra_holidays), extra_working_days=extra_working, day_length=day_length,
        ))

    def weekly_hours(self, node: Node) -> dict[int, tuple[Interval, ...]]:
        hours: dict[int, tuple[Interval, ...]] = {}
        for key, value in self.mapping(node, "hours"):
            intervals = self.intervals(value, f"hours of {key.value}")
            for weekday in self.weekdays(key):
                if weekday in hours:
                    raise self.fail(key, f"{_DAYS[weekday]} is given twice in hours")
                hours[weekday] = intervals
        if not any(hours.values()):
            raise self.fail(node, "no weekday has working hours: give at least one, e.g. mon-fri: [\"09:00-17:00\"]")
        return hours

    def weekdays(self, key: ScalarNode) -> range:
        def index(name: str) -> int:
            name = name.strip().lower()
            for i, day in enumerate(_DAYS):
                if name in (day, day[:3]):
                    return i
            raise self.fail(key, f"unknown weekday {name!r}: use monday..sunday, mon..sun or a range such as mon-fri")

        first, _, last = str(key.value).partition("-")
        start, end = index(first), index(last) if last else index(first)
        if end < start:
            raise self.fail(key, f"weekday range {key.value!r} runs backwards: write it from Monday towards Sunday")
        return range(start, end + 1)

    def intervals(self, node: Node, what: str) -> tuple[Interval, ...]:
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return ()
        items = node.value if isinstance(node, SequenceNode) else [node]
        parsed: list[Interval] = []
        for item in items:
            match = _HOURS.fullmatch(item.value.strip()) if isinstance(item, ScalarNode) else None
            if match is None:
                raise self.fail(item, f'{what}: write each interval as "HH:MM-HH:MM" in quotes, e.g. "09:00-17:00"')
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            parsed.append((self.clock(item, h1, m1, what), self.clock(item, h2, m2, what, end=True)))
        return self.checked(node, lambda: check_intervals(parsed))

    def clock(self, node: Node, hour: int, minute: int, what: str, end: bool = False) -> time:
        if end and (hour, minute) == (24, 0):
            return time(0)
        if hour > 23 or minute > 59:
            clock = f"{hour:02d}:{minute:02d}"
            raise self.fail(node, f"{what}: {clock} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
        return time(hour, minute)

    def extra_holidays(self, node: Node) -> dict[date, int]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, "extra_holidays must be a list of dates, e.g. [2026-12-24]")
        days: dict[date, int] = {}
        for item in node.value:
            day = self.day(item, "extra_holidays")
            if day in days:
                raise self.fail(item, f"extra holiday {day} is given twice")
            days[day] = item.start_mark.line + 1
        return days
