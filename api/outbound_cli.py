"""`casework case reply`, `casework outbox ...` and `casework letters ...`.

Register on the main app (api/cli.py) with ``register(case_app, outbox_app, letters_app)``.  The
CLI runs as the operator (it sees every case); ``--as NAME`` says who the message is from in
the folder and the audit trail.  The same services back the REST routes (api.outbound_routes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from api.cli_support import fail as _fail
from api.cli_support import out, runtime

# The outbound services, templates and transports are imported by the commands that use them: every
# `casework` command (`casework ingest` among them) registers these, and their imports were a sixth
# of its start-up (issue 15.10).
if TYPE_CHECKING:
    from casestore.outbound.schemas import DraftView, OutboundView


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def _os_user() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _fields(values: list[str] | None) -> dict[str, str]:
    out_: dict[str, str] = {}
    for v in values or []:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            _fail(f"--field {v!r}: write NAME=VALUE, e.g. --field 'decision=We uphold your complaint.'", 2)
        out_[key.strip()] = value
    return out_


def _edited(path: Path | None) -> str | None:
    if path is None:
        return None
    if str(path) == "-":
        return sys.stdin.read()
    if not path.is_file():
        _fail(f"--edit {path}: no such file; write the preview to it first (casework case reply REF --template T "
              f"--preview > {path}), edit it, then send it with --edit {path}", 2)
    return path.read_text(encoding="utf-8")


def _draft_text(view: DraftView) -> str:
    """The preview as an editable text: what --edit reads back."""
    return (f"Subject: {view.subject}\n\n{view.body}" if view.channel == "email" else view.body)


def case_reply(
    ref: str,
    template: Annotated[str | None, typer.Option(help="template name: acknowledgement, request_for_information, "
                                                      "outcome, or one of your own")] = None,
    channel: Annotated[str, typer.Option(help="email, sms or letter")] = "email",
    edit: Annotated[Path | None, typer.Option(help="send this file's text instead of the template's (email: a "
                                                   "'Subject: ...' line, a blank line, the body); - reads stdin")]
    = None,
    field: Annotated[list[str] | None, typer.Option(help="NAME=VALUE for the template (repeatable), e.g. "
                                                        "decision=...")] = None,
    to: Annotated[str | None, typer.Option(help="another recipient known to the case")] = None,
    attach: Annotated[list[int] | None, typer.Option(help="document id of the case folder (email, repeatable)")]
    = None,
    preview: Annotated[bool, typer.Option("--preview", help="print the text that would go; send nothing")] = False,
    actor: Annotated[str | None, typer.Option("--as", help="who sends it (folder and audit)")] = None,
    task: Annotated[int | None, typer.Option(help="the open task of the case it is sent for (a task that "
                                                  "requires a message to the customer counts it)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Reply to the case's customer by email, SMS or letter (queued; the sender delivers it)."""
    from api.outbound_parts import outbox_policy, templates
    from api.search_follow import index_now
    from casestore.outbound import services
    from casestore.outbound.schemas import DraftView
    from casestore.search import outbox as search_outbox

    if channel not in ("email", "sms", "letter"):
        _fail(f"--channel {channel!r}: choose email, sms or letter", 2)
    body = _edited(edit)
    if body is None and not template:
        _fail("say what to send: --template NAME, or --edit FILE with the text", 2)
    who = actor or _os_user()
    with runtime() as rt:
        args: dict[str, Any] = dict(case_ref=ref, channel=channel, actor=who, policy=outbox_policy(rt.settings),
                                    templates=templates(rt.settings), template=template, fields=_fields(field),
                                    body=body, to=to, attachments=attach or [])
        if preview:
            with rt.read_sessions() as session:
                draft, problems = services.preview(session, **args)
            view = DraftView.of(draft, problems)
            if as_json:
                _print_json(view.model_dump(mode="json"))
            else:
                sys.stdout.write(_draft_text(view))
                for p in problems:
                    sys.stderr.write(f"warning: {p}\n")
            return
        with rt.sessions() as session, session.begin():
            queued = services.queue_message(session, **args, task_id=task)
            outbox_ids = search_outbox.written_in(session)
        search = index_now(rt, outbox_ids, what=f"outbound {queued.item_id}")
    if as_json:
        _print_json({"id": queued.id, "item_id": queued.item_id, "case_ref": queued.case_ref,
                     "channel": queued.channel, "state": queued.state, "to": queued.recipient,
                     "search_index": search})
        return
    out.print(f"{queued.channel} to {queued.recipient} {queued.state} from case {queued.case_ref}: {queued.id}")


def _table(rows: list[OutboundView]) -> Table:
    table = Table("id", "case", "channel", "state", "to", "subject", "attempts", "problem")
    for r in rows:
        table.add_row(r.id, r.case_ref, r.channel, r.state, r.to, r.subject, str(r.attempts), r.last_error or "")
    return table


def outbox_list(
    state: Annotated[list[str] | None, typer.Option(help="only this state (repeatable): queued, sending, sent, "
                                                        "delivered, failed, unconfirmed, bounced, held, ...")]
    = None,
    channel: Annotated[str | None, typer.Option(help="email, sms or letter")] = None,
    case: Annotated[str | None, typer.Option(help="only this case")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Outbound messages and where each is; --state failed --state unconfirmed: what needs a person."""
    from casestore.outbound import operations

    with runtime() as rt, rt.read_sessions() as session:
        rows = operations.list_messages(session, states=state or (), channel=channel, case_ref=case, limit=limit)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    out.print(_table(rows))


def outbox_retry(outbound_id: str, reason: Annotated[str, typer.Option(help="why (audit trail)")] = "") -> None:
    """Send a failed, unconfirmed, bounced or held message again (you checked it did not go)."""
    from casestore.outbound import operations

    with runtime() as rt, rt.sessions() as session, session.begin():
        view = operations.retry_message(session, outbound_id=outbound_id, actor=_os_user(), reason=reason)
    out.print(f"{view.id}: queued again ({view.channel} to {view.to})")


def outbox_confirm(outbound_id: str, reason: Annotated[str, typer.Option(help="why (audit trail)")] = "") -> None:
    """An unconfirmed message did go (you found its Message-ID in the relay's log): mark it sent."""
    from casestore.outbound import operations

    with runtime() as rt, rt.sessions() as session, session.begin():
        view = operations.confirm_message(session, outbound_id=outbound_id, actor=_os_user(), reason=reason)
    out.print(f"{view.id}: sent")


def outbox_flagged(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Addresses and numbers nothing is sent to (they bounced or were refused)."""
    from casestore.outbound import services
    from casestore.outbound.schemas import FlaggedView

    with runtime() as rt, rt.read_sessions() as session:
        rows = [FlaggedView.of(f) for f in services.list_flagged(session)]
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("address", "channel", "flagged", "reason")
    for r in rows:
        table.add_row(r.address, r.channel, r.flagged_at.isoformat(timespec="seconds"), r.reason)
    out.print(table)


def outbox_unflag(address: Annotated[str, typer.Argument(help="as listed by `casework outbox flagged`, e.g. "
                                                              "email:jane@example.com")],
                  reason: Annotated[str, typer.Option(help="what you checked (audit trail)")] = "") -> None:
    """Send to this address again (you checked it with the customer)."""
    from casestore.outbound import services

    with runtime() as rt, rt.sessions() as session, session.begin():
        services.unflag_address(session, address_key=address, actor=_os_user(), reason=reason)
    out.print(f"{address}: no longer flagged")


def letters_list(
    state: Annotated[list[str] | None, typer.Option(help="to_print (default), printed or posted")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The mailroom's letters: to print (oldest first), or printed and waiting to be posted."""
    from casestore.outbound import operations

    with runtime() as rt, rt.read_sessions() as session:
        rows = operations.list_letters(session, states=state or ["to_print"], limit=1000)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("id", "case", "to", "state", "queued", "by")
    for r in rows:
        table.add_row(r.id, r.case_ref, r.to, r.state, r.created_at.isoformat(timespec="seconds"), r.created_by)
    out.print(table)


def _mark(ids: list[str], action: str) -> None:
    from casestore.outbound import operations

    with runtime() as rt, rt.sessions() as session, session.begin():
        for outbound_id in ids:
            operations.mark_letter(session, outbound_id=outbound_id, action=action, actor=_os_user())
    out.print(f"{len(ids)} letter(s) marked {action}")


def letters_printed(ids: Annotated[list[str], typer.Argument(help="letter ids (casework letters list)")]) -> None:
    """Mark letters printed."""
    _mark(ids, "printed")


def letters_posted(ids: Annotated[list[str], typer.Argument(help="letter ids (casework letters list)")]) -> None:
    """Mark letters posted (printed too, if they were not marked so)."""
    _mark(ids, "posted")


def letters_pdf(outbound_id: str, output: Annotated[Path, typer.Option("--out", help="file to write")]) -> None:
    """Write a letter's PDF to a file (to print it)."""
    from casestore.outbound import operations

    with runtime() as rt:
        with rt.read_sessions() as session:
            sha = operations.letter_pdf(session, outbound_id=outbound_id)
        with rt.blobs.open(sha) as fh:
            output.write_bytes(fh.read())
    out.print(f"{output}")


def register(case_app: typer.Typer, outbox_app: typer.Typer, letters_app: typer.Typer) -> None:
    case_app.command("reply")(case_reply)
    outbox_app.command("list")(outbox_list)
    outbox_app.command("retry")(outbox_retry)
    outbox_app.command("confirm")(outbox_confirm)
    outbox_app.command("flagged")(outbox_flagged)
    outbox_app.command("unflag")(outbox_unflag)
    letters_app.command("list")(letters_list)
    letters_app.command("printed")(letters_printed)
    letters_app.command("posted")(letters_posted)
    letters_app.command("pdf")(letters_pdf)
