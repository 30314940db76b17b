"""`casework calendar recompute NAME`: after a holiday is added to a calendar file, the running clocks
on it move (read and computed in one transaction, written in a short one, batch after batch), their
cases' open tasks follow, and a second run finds nothing more to move."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from casestore.db import make_engine, session_factory, upgrade
from casestore.work.models import SlaClock, WorkTask
from tests.casestore.work.rows import T0, case, clock, definition, store_definition, task
from tests.e2e.test_cli_pipeline import run_json

OFFICE = "timezone: UTC\nhours:\n  mon-fri: [\"09:00-17:00\"]\n"


def test_recompute_moves_the_running_clocks_of_a_changed_calendar(tmp_path: Path, user_env: dict[str, str],
                                                                  db_url: str) -> None:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    (calendars / "office.yaml").write_text(OFFICE)
    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'data' / 'casework.db'}"
    (tmp_path / "data").mkdir(exist_ok=True)
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as s, s.begin():
        store_definition(s, definition())
        ids = []
        for _ in range(3):  # 16 working hours from Monday 09:00: due Tuesday 17:00, before the holiday
            c = case(s)
            sla = clock(s, c, start=T0, budget=timedelta(hours=16))
            sla.calendar, sla.due_at, sla.warn_at = "office", T0 + timedelta(days=1, hours=8), T0 + timedelta(hours=12)
            sla.next_fire_at = sla.warn_at
            task(s, c, due_at=sla.due_at)
            ids.append(sla.id)
    (calendars / "office.yaml").write_text(OFFICE + "extra_holidays: [2026-03-03]\n")  # that Tuesday
    env = {**user_env, "CASEWORK_WORK__CALENDARS_DIR": str(calendars)}
    first = run_json(env, "calendar", "recompute", "office", "--batch", "2", "--rate", "100", "--json")  # paced
    assert (first["clocks"], first["moved"], first["tasks"], first["batches"]) == (3, 3, 3, 2)
    again = run_json(env, "calendar", "recompute", "office", "--json")
    assert (again["clocks"], again["moved"], again["tasks"]) == (3, 0, 0)
    wednesday_17 = T0.replace(day=4, hour=17)
    with session_factory(engine)() as s:
        assert {c.due_at for c in s.scalars(select(SlaClock).where(SlaClock.id.in_(ids)))} == {wednesday_17}
        assert {t.due_at for t in s.scalars(select(WorkTask))} == {wednesday_17}
    engine.dispose()
