"""`casework user ...` and `casework token ...`: users, and bearer tokens with a lifecycle.

Register on the main app (api/cli.py) with ``register(user_app, token_app)``.  The CLI runs as
the operator; the same services back ``/api/v1/admin/users`` and ``/api/v1/admin/tokens``.
A token itself is printed once, by ``token create``; listings never show it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from api.admin_schemas import TokenOut, UserOut
from api.cli_support import err, out, runtime
from api.cli_support import fail as _fail
from casestore import users


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="agent, supervisor, admin or integration")],
    team: Annotated[list[str] | None, typer.Option(help="a team the user belongs to; repeat for several")] = None,
) -> None:
    """Add a user of the API."""
    with runtime() as rt, rt.sessions() as session, session.begin():
        users.add_user(session, name=name, role=role, teams=team or [])
    out.print(f"user {name} added as {role}" + (f" in {', '.join(team)}" if team else ""))


def user_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user: role, teams, disabled, created."""
    with runtime() as rt, rt.read_sessions() as session:
        rows = [UserOut.of(u) for u in users.list_users(session)]
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("user", "role", "teams", "disabled", "created")
    for r in rows:
        table.add_row(r.name, r.role, ", ".join(r.teams), "yes" if r.disabled else "", r.created_at.isoformat())
    out.print(table)


def user_change(
    name: str,
    role: Annotated[str | None, typer.Option(help="the new role: agent, supervisor, admin or integration")] = None,
    team: Annotated[list[str] | None, typer.Option(help="a team the user is in from now on (repeat; replaces "
                                                         "every team)")] = None,
    no_team: Annotated[bool, typer.Option("--no-team", help="the user is in no team from now on")] = False,
) -> None:
    """Give user NAME another role and/or other teams (it holds from their next request)."""
    if role is None and team is None and not no_team:
        _fail("say what changes: --role ROLE, --team T (repeat) or --no-team", 2)
    if team and no_team:
        _fail("give --team or --no-team, not both", 2)
    with runtime() as rt, rt.sessions() as session, session.begin():
        user = users.change_user(session, name=name, role=role, teams=[] if no_team else team)
        teams = ", ".join(user.teams or []) or "no team"
        out.print(f"user {user.name} is now {user.role} in {teams}")


def _set_disabled(name: str, disabled: bool) -> None:
    with runtime() as rt, rt.sessions() as session, session.begin():
        users.set_disabled(session, name=name, disabled=disabled)
    out.print(f"user {name} {'disabled: its tokens stop working now' if disabled else 'enabled'}")


def user_disable(name: str) -> None:
    """Disable user NAME: every token of it is refused until it is enabled again."""
    _set_disabled(name, True)


def user_enable(name: str) -> None:
    """Enable user NAME again (its tokens that are not revoked or expired work again)."""
    _set_disabled(name, False)


def token_create(
    name: str,
    expires_in: Annotated[str | None, typer.Option(help="lifetime, e.g. 90d, 12h, 30m, 2w; default: no expiry")] = None,
    label: Annotated[str | None, typer.Option(help="what the token is for (shown by token list)")] = None,
) -> None:
    """Print a new bearer token for user NAME (only its hash is stored: keep it now)."""
    with runtime() as rt, rt.sessions() as session, session.begin():
        lifetime = users.parse_duration(expires_in) if expires_in else None
        new = users.issue_token(session, name=name, expires_in=lifetime, label=label)
        token_id, expires_at = new.row.id, new.row.expires_at
    sys.stdout.write(new.token + "\n")
    expiry = f"expires {expires_at.isoformat(timespec='seconds')}" if expires_at else "never expires"
    err.print(f"token {token_id} for {name}, {expiry}", highlight=False)


def token_list(
    name: Annotated[str | None, typer.Argument(help="only this user's tokens")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Tokens: id, user, label, created, expires, last used, revoked (never the token itself)."""
    with runtime() as rt, rt.read_sessions() as session:
        rows = [TokenOut.of(t) for t in users.list_tokens(session, name=name)]
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("id", "user", "label", "created", "expires", "last used", "revoked")

    def when(value: Any) -> str:
        return value.isoformat(timespec="seconds") if value else ""

    for r in rows:
        table.add_row(str(r.id), r.user, r.label or "", when(r.created_at), when(r.expires_at),
                      when(r.last_used_at), when(r.revoked_at) or ("yes" if r.revoked else ""))
    out.print(table)


def token_revoke(
    token_id: Annotated[int | None, typer.Argument(help="the token's id (casework token list)")] = None,
    user: Annotated[str | None, typer.Option("--user", help="revoke every token of this user instead")] = None,
) -> None:
    """Revoke token ID, or every token of a user with --user NAME."""
    if (token_id is None) == (user is None):
        _fail("give a token ID or --user NAME (not both)", 2)
    with runtime() as rt, rt.sessions() as session, session.begin():
        if user is not None:
            n = users.revoke_tokens(session, name=user)
            message = f"{n} token(s) of {user} revoked"
        else:
            row = users.revoke_token(session, token_id=int(token_id or 0))
            message = f"token {row.id} of {row.user.name} revoked"
    out.print(message)


def register(user_app: typer.Typer, token_app: typer.Typer) -> None:
    user_app.command("add")(user_add)
    user_app.command("list")(user_list)
    user_app.command("change")(user_change)
    user_app.command("disable")(user_disable)
    user_app.command("enable")(user_enable)
    token_app.command("create")(token_create)
    token_app.command("list")(token_list)
    token_app.command("revoke")(token_revoke)
