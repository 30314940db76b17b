"""Calendar YAML files: the shipped ones load, a full file means what it says, and each broken file is refused
with its path, the line of the problem and what to change."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from casestore.work.calendar import CalendarError, due, parse_duration
from casestore.work.calendar_config import SHIPPED_CALENDARS, CalendarFileError, load_calendar_file, load_calendars
from tests.casestore.work.calendars import LONDON, NEW_YORK, at

FULL = """\
# a contact centre in England
timezone: Europe/London
country: gb
subdivision: ENG
hours:
  mon-thu: ["08:00-12:30", "13:30-18:00"]
  friday: "08:00-16:00"
  sat: []
  sunday: ~
extra_holidays: [2026-12-24, 2026-12-31]
extra_working_days:
  2026-12-19: ["10:00-14:00"]
  2026-12-28: []
day_length: 9h
"""


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "contact-centre.yaml"
    path.write_text(FULL)
    cal = load_calendar_file(path)
    assert (cal.name, cal.timezone, cal.country, cal.subdivision) == ("contact-centre", "Europe/London", "GB", "ENG")
    assert cal.hours[0] == ((time(8), time(12, 30)), (time(13, 30), time(18)))
    assert cal.hours[4] == ((time(8), time(16)),)
    assert 5 not in cal.hours and 6 not in cal.hours
    assert cal.extra_holidays == {date(2026, 12, 24), date(2026, 12, 31)}
    assert cal.extra_working_days[date(2026, 12, 19)] == ((time(10), time(14)),)
    assert cal.extra_working_days[date(2026, 12, 28)] == cal.hours[0]
    assert parse_duration("1d", cal) == timedelta(hours=9)
    # Wed 23rd 17:00 + 2h: 1h that day, 24th extra holiday, 25th and weekend off, 28th worked (08:00 + 1h).
    assert due(at(LONDON, 2026, 12, 23, 17), timedelta(hours=2), cal) == at(LONDON, 2026, 12, 28, 9)


def test_24_00_ends_the_day(tmp_path: Path) -> None:
    path = tmp_path / "always.yml"
    path.write_text('timezone: UTC\nhours:\n  mon-sun: ["00:00-24:00"]\n')
    cal = load_calendars(tmp_path)["always"]
    assert cal.day_length == timedelta(hours=24)
    assert parse_duration("1w", cal) == timedelta(days=7)


def test_shipped_calendars() -> None:
    calendars = load_calendars(SHIPPED_CALENDARS)
    assert set(calendars) >= {"default", "us-ny"}
    england, new_york = calendars["default"], calendars["us-ny"]
    assert (england.timezone, england.country, england.subdivision) == ("Europe/London", "GB", "ENG")
    assert england.hours == {i: ((time(9), time(17)),) for i in range(5)}
    assert due(at(LONDON, 2026, 4, 2, 16), timedelta(hours=2), england) == at(LONDON, 2026, 4, 7, 10)
    assert due(at(NEW_YORK, 2026, 11, 25, 16), timedelta(hours=2), new_york) == at(NEW_YORK, 2026, 11, 27, 10)


BASE = 'timezone: Europe/London\nhours:\n  mon-fri: ["09:00-17:00"]\n'

BROKEN = [
    # (id, text, line, what the message says)
    ("yaml-syntax", 'timezone: Europe/London\nhours: [unclosed\n', 3, "not valid YAML"),
    ("empty-file", "", 1, "the file is empty"),
    ("a-list-not-a-mapping", "- timezone\n", 1, "a calendar must be a mapping"),
    ("unknown-key", BASE + "holidays: GB\n", 4, "unknown key 'holidays'"),
    ("duplicate-key", BASE + "timezone: UTC\n", 4, "'timezone' is given twice"),
    ("missing-timezone", 'hours:\n  mon: ["09:00-17:00"]\n', 1, "'timezone' is missing"),
    ("missing-hours", "timezone: UTC\n", 1, "'hours' is missing"),
    ("unknown-timezone", 'hours:\n  mon: ["09:00-17:00"]\ntimezone: Europe/Londres\n', 3,
     "unknown timezone 'Europe/Londres'"),
    ("timezone-not-text", BASE.replace("Europe/London", "[a, b]"), 1, "timezone must be a non-empty text value"),
    ("unknown-country", BASE + "country: XX\n", 4, "unknown holiday country 'XX'"),
    ("unknown-subdivision", BASE + "country: GB\nsubdivision: YORKS\n", 5, "unknown subdivision 'YORKS' of GB"),
    ("subdivision-without-country", BASE + "subdivision: ENG\n", 4, "needs a country"),
    ("hour-out-of-range", 'timezone: UTC\nhours:\n  mon: ["09:00-25:00"]\n', 3, "25:00 is not a time of day"),
    ("minute-out-of-range", 'timezone: UTC\nhours:\n  mon:\n    - "09:00-12:00"\n    - "13:00-17:75"\n', 5,
     "17:75 is not a time of day"),
    ("not-an-interval", 'timezone: UTC\nhours:\n  mon: ["9-5"]\n', 3, 'write each interval as "HH:MM-HH:MM"'),
    ("end-before-start", 'timezone: UTC\nhours:\n  tue: ["17:00-09:00"]\n', 3, "end before they start"),
    ("overlapping", 'timezone: UTC\nhours:\n  mon: ["09:00-13:00", "12:00-17:00"]\n', 3, "overlap"),
    ("unknown-weekday", 'timezone: UTC\nhours:\n  mon: ["09:00-17:00"]\n  funday: ["09:00-17:00"]\n', 4,
     "unknown weekday 'funday'"),
    ("weekday-twice", 'timezone: UTC\nhours:\n  mon-fri: ["09:00-17:00"]\n  wednesday: ["10:00-12:00"]\n', 4,
     "wednesday is given twice"),
    ("backwards-range", 'timezone: UTC\nhours:\n  fri-mon: ["09:00-17:00"]\n', 3, "runs backwards"),
    ("no-working-day", 'timezone: UTC\nhours:\n  mon: []\n  sat: ~\n', 3, "no weekday has working hours"),
    ("bad-holiday-date", BASE + "extra_holidays:\n  - 2026-12-24\n  - 2026-13-01\n", 6, "'2026-13-01' is not a date"),
    ("holiday-twice", BASE + "extra_holidays: [2026-12-24, 2026-12-24]\n", 4, "given twice"),
    ("holidays-not-a-list", BASE + "extra_holidays: 2026-12-24\n", 4, "must be a list of dates"),
    ("working-day-also-holiday", BASE + "extra_holidays: [2026-12-24]\nextra_working_days:\n  2026-12-24: []\n", 6,
     "also an extra holiday (line 4)"),
    ("extra-saturday-without-hours", BASE + "extra_working_days:\n  2026-12-19: []\n", 5,
     "is a saturday, which has no standard hours"),
    ("bad-working-day-hours", BASE + 'extra_working_days:\n  2026-12-19: ["14:00-10:00"]\n', 5,
     "end before they start"),
    ("day-length-in-days", BASE + "day_length: 1d\n", 4, "unknown unit 'd'"),
    ("day-length-zero", BASE + "day_length: 0h\n", 4, "day_length must be more than zero"),
    ("not-utf8", None, 1, "cannot be read"),
]


@pytest.mark.parametrize(("text", "line", "says"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_file_is_refused_with_file_and_line(tmp_path: Path, text: str | None, line: int, says: str) -> None:
    path = tmp_path / "broken.yaml"
    if text is None:
        path.write_bytes(b"timezone: \xff\xfe\n")
    else:
        path.write_text(text)
    with pytest.raises(CalendarFileError) as caught:
        load_calendars(tmp_path)
    error = caught.value
    assert (error.path, error.line) == (path, line), str(error)
    assert says in error.problem
    assert str(error).startswith(f"{path}:{line}: ")
    assert isinstance(error, CalendarError) and error.http_status == 422


def test_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="does not exist"):
        load_calendars(tmp_path / "missing")
    with pytest.raises(CalendarError, match=r"has no \.yaml files"):
        load_calendars(tmp_path)
    (tmp_path / "office.yaml").write_text(BASE)
    (tmp_path / "office.yml").write_text(BASE)
    with pytest.raises(CalendarFileError, match="a second calendar named 'office'"):
        load_calendars(tmp_path)
