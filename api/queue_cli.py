"""`casework work`, `casework queue` and `casework task` (claim, release), and `casework worker clock`.

Commands act as the user named by ``--as`` (its role and teams decide what it may get and see);
each opens one transaction around one service of ``casestore.work``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.table import Table

from api.cli_support import out, runtime

work_app = typer.Typer(help="Your work: get the next task, list what you hold.", no_args_is_help=True)
queue_app = typer.Typer(help="Work queues and their counts.", no_args_is_help=True)
task_app = typer.Typer(help="Tasks: claim, release, tick, complete; and the overrides reassign, redirect, waive.",
                       no_args_is_help=True)

AsUser = Annotated[str, typer.Option("--as", help="the user acting (see `casework user add`)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


def _actor(session: Any, name: str) -> Any:
    from casestore import users
    from casestore.work.actor import Actor

    user = users.get_user(session, name=name)
    return Actor(name=user.name, role=user.role, teams=tuple(user.teams or ()), disabled=user.disabled)


def _print_json(value: BaseModel | list[Any] | None) -> None:
    if isinstance(value, list):
        data: Any = [v.model_dump(mode="json") for v in value]
    else:
        data = value.model_dump(mode="json") if value is not None else None
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _task_table(tasks: list[Any], title: str) -> Table:
    table = Table("task", "case", "name", "queue", "urgency", "due", "state", "assignee", "lease until", title=title)
    for t in tasks:
        table.add_row(str(t.id), t.case_ref, t.name, t.queue, str(t.urgency), str(t.due_at or "-"), t.state,
                      t.assignee or "", str(t.lease_expires_at or ""))
    return table


@work_app.command("next")
def work_next(as_user: AsUser, as_json: AsJson = False) -> None:
    """Claim the best waiting task of your teams' queues; exit code 3 when there is none."""
    from casestore.models import utcnow
    from casestore.work import queue_reads, queues

    with runtime() as rt, rt.sessions() as session, session.begin():
        task = queues.get_next(session, actor=_actor(session, as_user), now=utcnow(),
                               max_active=rt.settings.queues.max_active_per_agent)
        view = queue_reads.task_views(session, [task])[0] if task is not None else None
    if as_json:
        _print_json(view)
    elif view is None:
        out.print("nothing waiting in your queues")
    else:
        out.print(_task_table([view], "claimed"))
    if view is None:
        raise typer.Exit(3)


@work_app.command("mine")
def work_mine(as_user: AsUser, as_json: AsJson = False) -> None:
    """The tasks you hold, most urgent first."""
    from casestore.work import queue_reads, queues

    with runtime() as rt, rt.read_sessions() as session:
        views = queue_reads.task_views(session, queues.my_work(session, actor=_actor(session, as_user)))
    if as_json:
        _print_json(views)
    else:
        out.print(_task_table(views, f"held by {as_user}"))


@queue_app.command("list")
def queue_list(as_user: Annotated[str | None, typer.Option(
        "--as", help="count as this user (its teams' queues, its visible cases); default: every queue")] = None,
        as_json: AsJson = False) -> None:
    """Queues with their counts: open, active, waiting, at risk, breached, oldest waiting."""
    from casestore.models import utcnow
    from casestore.work import queue_reads
    from casestore.work.actor import Actor

    with runtime() as rt, rt.read_sessions() as session:
        actor = _actor(session, as_user) if as_user else Actor(name="casework", role="admin")
        rows = queue_reads.queue_summaries(session, actor=actor, now=utcnow())
    if as_json:
        _print_json(rows)
        return
    table = Table("queue", "team", "open", "active", "waiting", "at risk", "breached", "oldest waiting")
    for q in rows:
        table.add_row(q.queue, q.team, str(q.open), str(q.active), str(q.waiting), str(q.at_risk), str(q.breached),
                      str(q.oldest_waiting or ""))
    out.print(table)


@task_app.command("claim")
def task_claim(task_id: int, as_user: AsUser, as_json: AsJson = False) -> None:
    """Claim a named task with a lease (fails if someone else holds it)."""
    from casestore.models import utcnow
    from casestore.work import queue_reads, queues

    with runtime() as rt, rt.sessions() as session, session.begin():
        task = queues.claim(session, task_id=task_id, actor=_actor(session, as_user), now=utcnow(),
                            max_active=rt.settings.queues.max_active_per_agent)
        view = queue_reads.task_views(session, [task])[0]
    if as_json:
        _print_json(view)
    else:
        out.print(_task_table([view], "claimed"))


@task_app.command("release")
def task_release(task_id: int, as_user: AsUser,
                 reason: Annotated[str, typer.Option(help="why: kept in the audit trail")] = "",
                 as_json: AsJson = False) -> None:
    """Give a task you hold back to its queue."""
    from casestore.work import queue_reads, queues

    with runtime() as rt, rt.sessions() as session, session.begin():
        task = queues.release(session, task_id=task_id, actor=_actor(session, as_user), reason=reason)
        view = queue_reads.task_views(session, [task])[0]
    if as_json:
        _print_json(view)
    else:
        out.print(f"task {view.id} is back in queue {view.queue}")


def run_clock_worker() -> None:
    """`casework worker clock`: the SLA clock loop and lease reaper in the foreground until SIGTERM."""
    from api.clock_worker import ClockLoop

    logging.getLogger().setLevel(logging.INFO)
    with runtime() as rt:
        loop = ClockLoop(rt.sessions, interval_s=rt.settings.clock.interval_s, batch=rt.settings.clock.batch)
        signal.signal(signal.SIGTERM, lambda *_: loop.stop.set())
        signal.signal(signal.SIGINT, lambda *_: loop.stop.set())
        loop.run()
