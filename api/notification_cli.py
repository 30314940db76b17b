"""`casework notifications --as NAME`: the person's notification feed (``casestore.work.notifications``)
on the command line, newest first; ``--seen`` marks everything shown so far as read."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from api.cli_support import out, runtime
from api.queue_cli import AsJson, AsUser, _actor, _print_json


def notifications(
    as_user: AsUser,
    unread: Annotated[bool, typer.Option("--unread", help="only notices you have not marked seen")] = False,
    seen: Annotated[bool, typer.Option("--seen", help="then mark every notice so far as seen")] = False,
    limit: Annotated[int, typer.Option(min=1, max=200, help="how many, newest first")] = 50,
    before: Annotated[int | None, typer.Option(min=1, help="older than this notice id (next_before)")] = None,
    as_json: AsJson = False,
) -> None:
    """Notices addressed to your role (or one below it) on cases your teams may see: SLA warnings
    and breaches an escalation rule's notify_role sent."""
    from casestore.work import notifications as service

    with runtime() as rt:
        with rt.read_sessions() as session:
            feed = service.feed(session, _actor(session, as_user), before=before, limit=limit, unread_only=unread)
        if seen:
            with rt.sessions() as session, session.begin():
                mark = service.mark_seen(session, _actor(session, as_user))
            feed.unread, feed.seen_up_to = mark.unread, mark.seen_up_to
    if as_json:
        _print_json(feed)
        return
    table = Table("id", "when (UTC)", "case", "to", "notice", "", title=f"notifications for {escape(as_user)}")
    for n in feed.notices:
        table.add_row(str(n.id), n.at.strftime("%Y-%m-%d %H:%M"), escape(n.case_ref), escape(n.role),
                      escape(n.message), "unread" if n.unread else "")
    out.print(table)
    more = f"; older: --before {feed.next_before}" if feed.next_before else ""
    out.print(f"{feed.unread}{'+' if feed.unread_capped else ''} unread{more}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("notifications")(notifications)
