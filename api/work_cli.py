"""`casework task complete|tick|reassign|redirect|waive` and `casework case note|status|close|reopen|assign|
urgency|skip-stage|reopen-stage|clock`: the case-work services on the command line.

Each command opens one transaction around one service of ``casestore.work``.  ``--as NAME`` acts as
that user (its role and teams decide what it may do and see); without it the command acts as the
console operator (``operator``, with the system role: no claim needed, every action allowed;
overrides still need a reason).  Errors print their message and exit with the error's exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.cli_support import err, out, runtime

OptionalAs = Annotated[str | None, typer.Option("--as", help="the user acting (default: the console operator)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]
ReasonOpt = Annotated[str, typer.Option(help="why: required for overrides, kept in the audit trail")]


def _actor(session: Session, name: str | None) -> Any:
    from casestore import users
    from casestore.work.actor import Actor

    if name is None:
        return Actor(name="operator", role="system")  # whoever administers the machine (casestore.access)
    user = users.get_user(session, name=name)
    return Actor(name=user.name, role=user.role, teams=tuple(user.teams or ()), disabled=user.disabled)


def _show(view: BaseModel, as_json: bool, line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(view.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    else:
        out.print(line, highlight=False)


def _search_follows(rt: Any, outbox_ids: list[int], *, what: str) -> None:
    """A status change (or a task's message) reaches search now, or when the index is back."""
    from api.search_follow import UPDATED, index_now

    search = index_now(rt, outbox_ids, what=what)
    if search != UPDATED:
        err.print(f"search is not updated yet: {search} (by `casework serve`; or run `casework reindex`)",
                  highlight=False)


def _task(as_json: bool, change: Callable[[Session, Any], Any]) -> None:
    """Run ``change(session, calendars)`` on a task; print the task."""
    from casestore.search import outbox as search_outbox
    from casestore.work.views import task_view_of

    with runtime() as rt:
        calendars = rt.calendars
        with rt.sessions() as session, session.begin():
            task = change(session, calendars)
            view = task_view_of(session, task=task)
            outbox_ids = search_outbox.written_in(session)
        _search_follows(rt, outbox_ids, what=f"task {view.id}")
    missing = f"  missing: {', '.join(view.missing)}" if view.missing and view.state != "completed" else ""
    _show(view, as_json, f"task {view.id} {view.name} #{view.iteration}: {view.state}"
                         f"{' ' + view.completion_code if view.completion_code else ''}"
                         f"{' (' + view.assignee + ')' if view.assignee else ''} in {view.queue}{missing}")


def _case(ref: str, as_json: bool, change: Callable[[Session, Any], Any]) -> None:
    """Run ``change(session, calendars)`` on a case; print its work."""
    from casestore.cases import get_case
    from casestore.search import outbox as search_outbox
    from casestore.work.views import work_view

    with runtime() as rt:
        calendars = rt.calendars
        with rt.sessions() as session, session.begin():
            change(session, calendars)
            view = work_view(session, case=get_case(session, ref=ref))
            outbox_ids = search_outbox.written_in(session)
        _search_follows(rt, outbox_ids, what=f"case {ref}")
    assert view is not None
    stuck = f"  stuck: {'; '.join(view.stuck)}" if view.stuck else ""
    _show(view, as_json, f"{ref}: {view.case_type} v{view.version}, stage {view.stage or _all_done(view.status)}, "
                         f"{view.status}{' ' + view.completion_code if view.completion_code else ''}, urgency "
                         f"{view.urgency}, owner {view.assignee or '-'}{stuck}")


# -- tasks ------------------------------------------------------------------------------------------


def task_complete(
    task_id: int,
    code: Annotated[str, typer.Option(help="a completion code the task allows")],
    as_user: OptionalAs = None,
    note: Annotated[str | None, typer.Option(help="a note added to the case")] = None,
    lease_version: Annotated[int | None, typer.Option(help="the lease_version of your claim")] = None,
    as_json: AsJson = False,
) -> None:
    """Complete a task you hold with a code (its required checklist items ticked or waived)."""
    from api.outbound_parts import outbox_policy, templates
    from api.settings import get_settings
    from casestore.outbound.task_outbox import OutboxForTasks
    from casestore.work import engine

    settings = get_settings()  # a code that sends a message queues it in the completion's transaction
    outbox = OutboxForTasks(policy=outbox_policy(settings), templates=templates(settings))
    _task(as_json, lambda s, cals: engine.complete_task(
        s, task_id=task_id, code=code, actor=_actor(s, as_user), calendars=cals, lease_version=lease_version,
        note=note, outbox=outbox))


def task_tick(
    task_id: int,
    item: str,
    as_user: OptionalAs = None,
    undo: Annotated[bool, typer.Option("--undo", help="untick the item")] = False,
    as_json: AsJson = False,
) -> None:
    """Tick a checklist item of a task you hold (--undo: untick it)."""
    from casestore.work import engine

    _task(as_json, lambda s, cals: engine.tick(s, task_id=task_id, item=item, actor=_actor(s, as_user),
                                                  calendars=cals, done=not undo))


def task_reassign(task_id: int, to: Annotated[str, typer.Option(help="the user who gets it")], reason: ReasonOpt,
                  as_user: OptionalAs = None, as_json: AsJson = False) -> None:
    """Give a task to a user, held by them until released (an override)."""
    from casestore.work import overrides

    _task(as_json, lambda s, cals: overrides.reassign_task(s, task_id=task_id, to=to, actor=_actor(s, as_user),
                                                              reason=reason, calendars=cals))


def task_redirect(task_id: int, queue: Annotated[str, typer.Option(help="another queue of the case type")],
                  reason: ReasonOpt, as_user: OptionalAs = None, as_json: AsJson = False) -> None:
    """Move a task to another queue (an override)."""
    from casestore.work import overrides

    _task(as_json, lambda s, cals: overrides.redirect_task(s, task_id=task_id, queue=queue,
                                                              actor=_actor(s, as_user), reason=reason, calendars=cals))


def task_waive(task_id: int, item: str, reason: ReasonOpt, as_user: OptionalAs = None, as_json: AsJson = False) -> None:
    """Waive a checklist item of a task (an override)."""
    from casestore.work import overrides

    _task(as_json, lambda s, cals: overrides.waive_item(s, task_id=task_id, item=item, actor=_actor(s, as_user),
                                                           reason=reason, calendars=cals))


# -- cases ------------------------------------------------------------------------------------------


def case_note(ref: str, body: str, as_user: OptionalAs = None) -> None:
    """Add a note to a case."""
    from casestore.work import engine

    with runtime() as rt, rt.sessions() as session, session.begin():
        note = engine.add_note(session, ref=ref, body=body, actor=_actor(session, as_user))
        note_id = note.id
    out.print(f"note {note_id} added to {ref}")


def case_status(ref: str, status: str, as_user: OptionalAs = None,
                reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "",
                as_json: AsJson = False) -> None:
    """Set a case's status: open, in_progress, awaiting_customer, awaiting_third_party or pending."""
    from casestore.work import engine

    _case(ref, as_json, lambda s, cals: engine.set_status(s, ref=ref, status=status, actor=_actor(s, as_user),
                                                          calendars=cals, reason=reason))


def case_close(ref: str, code: Annotated[str, typer.Option(help="a completion code of the case's type")],
               as_user: OptionalAs = None,
               reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "",
               as_json: AsJson = False) -> None:
    """Close a case with a completion code; its open tasks are cancelled and its clocks stop."""
    from casestore.work import engine

    _case(ref, as_json, lambda s, cals: engine.close_case(s, ref=ref, code=code, actor=_actor(s, as_user),
                                                          calendars=cals, reason=reason))


def case_reopen(ref: str, reason: ReasonOpt, as_user: OptionalAs = None, as_json: AsJson = False) -> None:
    """Reopen a closed case (an override)."""
    from casestore.work import overrides

    _case(ref, as_json, lambda s, cals: overrides.reopen_case(s, ref=ref, actor=_actor(s, as_user), reason=reason,
                                                              calendars=cals))


def case_assign(ref: str, reason: ReasonOpt,
                to: Annotated[str | None, typer.Option(help="the case's new owner (omit: nobody)")] = None,
                as_user: OptionalAs = None, as_json: AsJson = False) -> None:
    """Give a case an owner: replies are put in front of them (an override)."""
    from casestore.work import overrides

    _case(ref, as_json, lambda s, cals: overrides.reassign_case(s, ref=ref, to=to, actor=_actor(s, as_user),
                                                                reason=reason, calendars=cals))


def case_urgency(ref: str, urgency: int, reason: ReasonOpt, as_user: OptionalAs = None,
                 as_json: AsJson = False) -> None:
    """Raise a case's urgency: its tasks move up their queues (an override)."""
    from casestore.work import overrides

    _case(ref, as_json, lambda s, cals: overrides.raise_urgency(s, ref=ref, urgency=urgency, actor=_actor(s, as_user),
                                                                reason=reason, calendars=cals))


def case_skip_stage(ref: str, stage: str, reason: ReasonOpt, as_user: OptionalAs = None,
                    as_json: AsJson = False) -> None:
    """Skip the case's current stage (an override)."""
    from casestore.work import overrides

    _case(ref, as_json, lambda s, cals: overrides.skip_stage(s, ref=ref, stage=stage, actor=_actor(s, as_user),
                                                             reason=reason, calendars=cals))


def case_reopen_stage(ref: str, stage: str, reason: ReasonOpt, as_user: OptionalAs = None,
                      as_json: AsJson = False) -> None:
    """Go back to the current or an earlier stage and run its tasks again (an override)."""
    from casestore.work import overrides

    _case(ref, as_json, lambda s, cals: overrides.reopen_stage(s, ref=ref, stage=stage, actor=_actor(s, as_user),
                                                               reason=reason, calendars=cals))


def case_clock(
    ref: str,
    clock: str,
    action: Annotated[str, typer.Argument(help="pause, resume or change")],
    reason: ReasonOpt,
    duration: Annotated[str | None, typer.Option(help='change: a new total working time, e.g. "3d"')] = None,
    due: Annotated[datetime | None, typer.Option(help="change: a new due time (ISO 8601, with its offset)")] = None,
    as_user: OptionalAs = None,
    as_json: AsJson = False,
) -> None:
    """Pause, resume or change one SLA clock of a case (an override)."""
    from casestore.errors import InvalidInput
    from casestore.validation import as_utc
    from casestore.work import overrides

    def change(s: Session, cals: Any) -> Any:
        actor = _actor(s, as_user)
        if action == "pause":
            return overrides.pause_clock(s, ref=ref, clock=clock, actor=actor, reason=reason, calendars=cals)
        if action == "resume":
            return overrides.resume_clock(s, ref=ref, clock=clock, actor=actor, reason=reason, calendars=cals)
        if action == "change":
            return overrides.change_clock(s, ref=ref, clock=clock, actor=actor, reason=reason, calendars=cals,
                                          duration=duration, due_at=as_utc(due) if due is not None else None)
        raise InvalidInput(f"unknown clock action {action!r}: use pause, resume or change")

    _case(ref, as_json, change)


def register(task_app: typer.Typer, case_app: typer.Typer) -> None:
    """Add these commands to the `casework task` and `casework case` groups."""
    task_app.command("complete")(task_complete)
    task_app.command("tick")(task_tick)
    task_app.command("reassign")(task_reassign)
    task_app.command("redirect")(task_redirect)
    task_app.command("waive")(task_waive)
    case_app.command("note")(case_note)
    case_app.command("status")(case_status)
    case_app.command("close")(case_close)
    case_app.command("reopen")(case_reopen)
    case_app.command("assign")(case_assign)
    case_app.command("urgency")(case_urgency)
    case_app.command("skip-stage")(case_skip_stage)
    case_app.command("reopen-stage")(case_reopen_stage)
    case_app.command("clock")(case_clock)


def _all_done(status: str) -> str:
    """The stage of a case whose every stage is done: closed, or waiting for a person to close it."""
    return "(all done)" if status == "closed" else "(all done: ready to close with a code)"
