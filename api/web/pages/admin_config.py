"""``/admin/case-types`` and ``/admin/calendars`` (administrators only): the configuration case
work runs on.

- Case types: every stored version (the newest is what new cases start with) and the files of
  the configured folder, each loaded, not loaded or changed without a version bump
  (``casestore.work.catalogue``, what ``casework casetype list`` prints); and the check of any
  folder on the server (``?folder=``, what ``casework casetype check DIR`` does: files are read,
  nothing is stored).  Loading stays on the command line (``casework casetype load``).
- Calendars: each business calendar this process loaded, its working week, holidays and the
  closed working days of the next weeks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api.outbound_parts import templates
from api.web.pages.admin import admin_nav, require_admin
from api.web.session_auth import Page, runtime_of
from api.web.templating import render
from casestore.work.calendar import BusinessCalendar, CalendarError, parse_duration
from casestore.work.catalogue import FolderCheck, catalogue, check_folder

router = APIRouter(include_in_schema=False)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CLOSED_AHEAD_DAYS = 90


@dataclass(frozen=True)
class CalendarShown:
    name: str
    timezone: str
    holidays_from: str
    week: list[tuple[str, str]]  # weekday, hours
    day_length: str
    closed_ahead: list[date]  # weekdays normally worked that are not (holidays) in the next weeks
    extra_holidays: list[date]
    extra_working_days: list[date]
    used_by: list[str]


def _hours(intervals: tuple[tuple[object, object], ...] | list[tuple[object, object]]) -> str:
    return ", ".join(f"{a:%H:%M}-{b:%H:%M}".replace("-00:00", "-24:00") for a, b in intervals) or "closed"


def calendar_shown(name: str, cal: BusinessCalendar, *, today: date, used_by: list[str]) -> CalendarShown:
    week = [(WEEKDAYS[i], _hours(list(cal.hours.get(i, ())))) for i in range(7)]
    closed = [today + timedelta(days=n) for n in range(CLOSED_AHEAD_DAYS)
              if cal.hours.get((today + timedelta(days=n)).weekday()) and not cal.hours_on(today + timedelta(days=n))]
    try:
        length = parse_duration("1d", cal)
        day = f"{int(length.total_seconds() // 3600)} h {int(length.total_seconds() % 3600 // 60):02d} min"
    except CalendarError:
        day = "?"
    return CalendarShown(name=name, timezone=cal.timezone,
                         holidays_from=f"{cal.country}{'-' + cal.subdivision if cal.subdivision else ''}"
                         if cal.country else "none (only the extra holidays)",
                         week=week, day_length=day, closed_ahead=closed,
                         extra_holidays=sorted(cal.extra_holidays), extra_working_days=sorted(cal.extra_working_days),
                         used_by=used_by)


@router.get("/admin/case-types")
def case_types_page(request: Request, page: Page,
                    folder: Annotated[str, Query(max_length=1000)] = "") -> Response:
    require_admin(page)
    rt = runtime_of(request)
    known = templates(rt.settings)
    with rt.read_sessions() as session:
        found = catalogue(session, folder=rt.settings.case_types_dir, calendars=rt.calendars, templates=known)
    checked: FolderCheck | None = (check_folder(Path(folder.strip()), calendars=rt.calendars, templates=known)
                                   if folder.strip() else None)
    return render(request, "admin_case_types.html", {"catalogue": found, "checked": checked, "folder": folder,
                                                     **admin_nav("case_types")}, page=page)


@router.get("/admin/calendars")
def calendars_page(request: Request, page: Page) -> Response:
    require_admin(page)
    rt = runtime_of(request)
    types = check_folder(rt.settings.case_types_dir, calendars=rt.calendars, templates=templates(rt.settings)).types
    today = date.today()
    shown = [calendar_shown(name, cal, today=today, used_by=sorted(t.name for t in types if t.calendar == name))
             for name, cal in sorted(rt.calendars.items())]
    return render(request, "admin_calendars.html", {"calendars": shown, "folder": str(rt.settings.calendars_dir),
                                                    **admin_nav("calendars")}, page=page)
