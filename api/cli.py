"""The `casework` command line. Errors carry their exit code (``exit_code`` on each package's root error)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api import casetype_cli
from api.cli_support import err, out, runtime
from api.cli_support import fail as _fail
from api.settings import get_settings

if TYPE_CHECKING:
    from api.dead_letter_ops import Filters
    from ingest.bus.sqlite_log import SqliteBus

app = typer.Typer(help="casework: case-management intake. Data lives in CASEWORK_DATA_DIR (default ./casework-data).",
                  no_args_is_help=True, add_completion=False)
import_app = typer.Typer(help="Load CRM/billing customers and existing cases from CSV or JSON Lines.",
                         no_args_is_help=True)
case_app = typer.Typer(help="Case folders.", no_args_is_help=True)
item_app = typer.Typer(help="Inbound items.", no_args_is_help=True)
user_app = typer.Typer(help="Users of the API: add, list, disable, enable.", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens: create (with expiry and label), list, revoke.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter topic intake.dead.", no_args_is_help=True)
triage_app = typer.Typer(help="Items the matcher left for a person.", no_args_is_help=True)
train_app = typer.Typer(help="Train the document-type model.", no_args_is_help=True)
bus_app = typer.Typer(help="The embedded SQLite bus: retention and consumer groups.", no_args_is_help=True)
outbox_app = typer.Typer(help="Outbound email, SMS and letters: where each is, and what needs a person.",
                         no_args_is_help=True)
letters_app = typer.Typer(help="The mailroom's letters: list, PDF, mark printed and posted.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(case_app, name="case")
app.add_typer(item_app, name="item")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(dlq_app, name="dlq")
app.add_typer(triage_app, name="triage")
app.add_typer(train_app, name="train")
app.add_typer(bus_app, name="bus")
app.add_typer(outbox_app, name="outbox")
app.add_typer(letters_app, name="letters")
app.add_typer(casetype_cli.app, name="casetype")
calendar_app = typer.Typer(help="Business calendars.", no_args_is_help=True)
app.add_typer(calendar_app, name="calendar")

log = logging.getLogger("casework")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    from api.log_setup import configure_logging

    configure_logging(level=logging.DEBUG if verbose else logging.WARNING, fmt=get_settings().log.format)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files and folders to ingest")],
    channel: Annotated[
        str | None, typer.Option(help="email, scan, file, sms, fax, webform, api or call; inferred if not given")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object with counts and results")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for every outcome")] = 3600.0,
) -> None:
    """Ingest files and folders through the whole pipeline and wait for every outcome."""
    from api.ingest_run import run_ingest

    with runtime() as rt:
        show_bar = not as_json and out.is_terminal
        progress = Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=out, disable=not show_bar)
        with progress:
            task = progress.add_task("ingest", total=None)
            report = run_ingest(
                rt, paths, channel=channel,  # type: ignore[arg-type]
                timeout=timeout,
                on_total=lambda n: progress.update(task, total=n),
                on_progress=lambda n: progress.update(task, completed=n),
            )
    counts = report.counts()
    if as_json:
        _print_json(report.as_dict())
    else:
        table = Table("source", "outcome", "case", "type", "note")
        for r in report.results:
            note = r.error or ("duplicate of an earlier item" if r.duplicate else "")
            table.add_row(r.source, r.outcome or "", r.case_ref or "", r.doc_type or "", note)
        out.print(table)
        out.print(", ".join(f"{k}: {v}" for k, v in counts.items()) + f" in {report.seconds:.1f}s")
    if report.timed_out:
        raise typer.Exit(75)
    if counts["failed"]:
        raise typer.Exit(1)


def _import(kind: str, path: Path, as_json: bool) -> None:
    from casestore import importer

    fn: Callable[..., Any] = importer.import_customers if kind == "customers" else importer.import_cases
    if not path.is_file():
        _fail(f"{path} is not a file: give a CSV or JSON Lines file of {kind}")
    from api.search_follow import UPDATED, index_now
    from casestore.search import outbox as search_outbox

    with runtime() as rt:
        setup = rt.work if kind == "cases" else None  # loaded (and stored) before the import's transaction
        with rt.sessions() as session, session.begin():
            if setup is not None:  # each case gets its work: its type's first stage, or the stage column's
                from casestore.work.inbound import start_imported

                report = fn(session, path, on_case=lambda s, case, stage: start_imported(
                    s, case=case, setup=setup, stage=stage))
            else:
                report = fn(session, path, phone_region=rt.settings.match.phone_region)
            # who may see them, or the name they are found by, changed: search follows, with the import
            search_outbox.enqueue(session, case_refs=report.visibility_changed,
                                  customer_ids=report.renamed_customers)
            outbox_ids = search_outbox.written_in(session)
        search = index_now(rt, outbox_ids, what=f"import {kind} ({len(report.visibility_changed)} cases changed "
                                                f"team or status, {len(report.renamed_customers)} customers renamed)")
    errors = [{"line": e.line, "reason": e.reason} for e in report.errors]
    if as_json:
        body: dict[str, Any] = {"created": report.created, "updated": report.updated, "errors": errors}
        if kind == "customers":
            body.update(prospects_merged=report.prospects_merged, prospects_to_review=report.prospects_to_review)
        _print_json(body)
    else:
        out.print(f"{kind}: {report.created} created, {report.updated} updated, {len(errors)} rejected")
        if report.prospects_merged or report.prospects_to_review:
            out.print(f"prospects: {len(report.prospects_merged)} merged into their CRM customer, "
                      f"{len(report.prospects_to_review)} to review (casework customer reviews)")
        for e in errors:
            err.print(f"  line {e['line']}: {e['reason']}", highlight=False)
    if search != UPDATED:  # committed with the import: `casework serve` writes it when the index is back
        err.print(f"imported; search is not updated yet: {search} (by `casework serve`; or run "
                  "`casework reindex`)", highlight=False)
    if errors:
        raise typer.Exit(1)


@import_app.command("customers")
def import_customers(
    file: Path,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Customers: customer_id,name,email,phone,address,postcode,account_number (CSV or JSON Lines)."""
    _import("customers", file, as_json)


@import_app.command("cases")
def import_cases(
    file: Path,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cases: ref,customer_id,case_type,status,opened_at,subject[,team][,stage]; references kept as given.

    Each case gets its work (the case type named by case_type, else general): the first stage, or
    the stage given, with no task done."""
    _import("cases", file, as_json)


@case_app.command("show")
def case_show(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The case folder: customer, documents, notes, audit, and its work (stage, tasks, clocks)."""
    from casestore.customers import PROSPECT_PREFIX
    from casestore.work.folder import case_folder

    with runtime() as rt, rt.read_sessions() as session:
        folder = case_folder(session, ref=ref).model_dump(mode="json")
    if as_json:
        _print_json(folder)
        return
    out.print(f"[bold]{folder['ref']}[/bold]  {folder['case_type']}  {folder['status']}  {folder['subject']}")
    cust = folder.get("customer")
    if cust:
        prospect = " (prospect: kept from what they wrote; not in the CRM)" if str(cust["customer_id"]).startswith(
            PROSPECT_PREFIX) else ""
        contact = ", ".join(str(cust[k]) for k in ("email", "phone", "address", "postcode") if cust.get(k))
        out.print(f"customer: {cust['customer_id']} {cust['name']} <{contact}>{prospect}")
    else:
        out.print("customer: (unknown)")
    docs = Table("document", "received", "channel", "type", "title", "chars", "direction", title="documents")
    for d in folder["documents"]:
        way = "in" if d["direction"] == "in" else f"out by {d['sender']}: {d['delivery_state']}"
        docs.add_row(str(d["document_id"]), str(d["received_at"]), d["channel"] or "", d["doc_type"] or "",
                     d["title"] or "", str(d["text_chars"]), way)
    out.print(docs)
    for n in folder["notes"]:
        out.print(f"note {n['created_at']} {n['author']}: {n['body']}")
    audit = Table("at", "actor", "action", "reason", title="audit")
    for a in folder["audit"]:
        audit.add_row(str(a["at"]), a["actor"], a["action"], a["reason"] or "")
    out.print(audit)
    _print_work(folder.get("work"))


def _print_work(work: dict[str, Any] | None) -> None:
    if work is None:
        out.print("work: none yet (import the case, or it starts with new correspondence)")
        return
    code = f" ({work['completion_code']})" if work["completion_code"] else ""
    done = "(all done)" if work["status"] == "closed" else "(all done: ready to close with a code)"
    out.print(f"work: {work['case_type']} v{work['version']}, stage {work['stage'] or done}, "
              f"{work['status']}{code}, urgency {work['urgency']}, owner {work['assignee'] or '-'}", highlight=False)
    for reason in work["stuck"]:
        out.print(f"[red]stuck:[/red] {reason}", highlight=False)
    tasks = Table("task", "stage", "name", "state", "queue", "assignee", "code", "checklist", title="tasks")
    for t in work["tasks"]:
        items = ", ".join(f"{i['name']}:{i['state']}" for i in t["checklist"])
        tasks.add_row(str(t["id"]), t["stage"], f"{t['name']} #{t['iteration']}", t["state"], t["queue"],
                      t["assignee"] or "", t["completion_code"] or "", items)
    out.print(tasks)
    clocks = Table("clock", "state", "used", "of", "due", "breached", title="SLA clocks")
    for c in work["clocks"]:
        clocks.add_row(c["name"], c["state"], f"{c['used_seconds'] // 60} min", f"{c['budget_seconds'] // 60} min",
                       str(c["due_at"] or ""), str(c["breached_at"] or ""))
    out.print(clocks)


@item_app.command("show")
def item_show(item_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The item, its documents and their extracted text."""
    from casestore import items

    with runtime() as rt, rt.read_sessions() as session:
        view = items.item_view(session, item_id=item_id)
    if as_json:
        _print_json(view)
        return
    out.print(f"[bold]{view['item_id']}[/bold] {view['channel']} {view['outcome']} case={view.get('case_ref')} "
              f"type={view.get('doc_type')}")
    out.print(f"from: {view.get('sender') or ''}  subject: {view.get('subject') or ''}")
    for d in view["documents"]:
        out.print(f"--- part {d['part_index']} {d['kind']} {d.get('filename') or ''} {d.get('error') or ''}")
        out.print(d["text"] or "", markup=False, highlight=False)
    for f in view.get("failures", []):
        out.print(f"[red]failed[/red] at {f['stage']}: {f['error_class']}: {f['message']}")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of standard input (for scripts)")] = False,
) -> None:
    """Set the workbench password of user NAME (asked twice; argon2-hashed). Signs out their sessions."""
    from casestore.signin.passwords import set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True)
    else:
        _fail("no terminal to ask for the password: pass --password-stdin and pipe it in", 2)
    with runtime() as rt, rt.sessions() as session, session.begin():
        set_password(session, name=name, password=password)
    out.print(f"password set for {name}; sign in at /login")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
) -> None:
    """Run the API, the drop-folder connector and (on the embedded default) every pipeline stage."""
    from api.serve import run_server

    settings = get_settings()
    run_server(settings, host=host or settings.serve.host, port=port or settings.serve.port)


def _serve_worker_metrics() -> None:
    """A worker's scrape listener (CASEWORK_METRICS__PORT): its stage's series and its process;
    the backlog is on the API's /metrics."""
    settings = get_settings()
    if settings.metrics.port:
        from api.metrics import metrics_registry, serve_metrics

        serve_metrics(metrics_registry(None, connectors=False), host=settings.metrics.host,
                      port=settings.metrics.port)


@app.command()
def worker(stage: Annotated[str, typer.Argument(
        help="extract, classify, file, clock (SLA clocks) or sender (the outbox)")]) -> None:
    """Run one pipeline stage, the SLA clock loop or the outbox sender (for production); stops cleanly on SIGTERM."""
    import signal

    from ingest.heap import settled
    from ingest.pipeline import STAGES, PipelineRunner

    _serve_worker_metrics()  # first: every kind of worker answers its scrape listener (the compose health check)

    if stage == "clock":
        from api.queue_cli import run_clock_worker

        run_clock_worker()
        return
    if stage not in (*STAGES, "sender"):
        _fail(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}, clock or sender", 2)
    logging.getLogger().setLevel(logging.INFO)
    if stage == "sender":
        _run_sender()
        return
    with runtime() as rt:
        from api.config_watch import start_watch

        runner = PipelineRunner(rt.pipeline_parts(with_search=stage == "file"), stages=[stage])
        settled()  # the stage's settings, models and index are made: leave them out of every collection
        signal.signal(signal.SIGTERM, lambda *_: runner.stop.set())
        signal.signal(signal.SIGINT, lambda *_: runner.stop.set())
        runner.start()
        watch = start_watch(rt) if stage == "file" else None  # new case types and calendars without a restart
        while not runner.stop.wait(0.5):
            if not runner.alive():
                _fail(f"stage {stage} stopped: {runner.errors[-1] if runner.errors else 'unknown error'}")
        if watch is not None:
            watch.close()
        runner.close()


def _run_sender() -> None:
    import signal
    import threading

    from api.outbound_parts import make_sender

    with runtime() as rt:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        make_sender(rt).run(stop)


@app.command()
def connector(
    name: Annotated[str, typer.Argument(help="folder (the drop folder), imap, smtp, folders, drops, calls, "
                                             "fax-spool, or a webhook connector: twilio, fax, webform")],
    host: Annotated[str, typer.Option(help="webhook connectors: address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="webhook connectors: port to listen on")] = 8001,
) -> None:
    """Run one connector alone, in the foreground; stops cleanly on SIGTERM or Ctrl-C."""
    import signal
    import threading

    from connectors.folder import FolderWatcher
    from connectors.runner import CONNECTOR_NAMES, run_connector

    if name not in ("folder", *CONNECTOR_NAMES):
        _fail(f"unknown connector {name!r}: choose one of folder, {', '.join(CONNECTOR_NAMES)}", 2)
    logging.getLogger().setLevel(logging.INFO)
    with runtime() as rt:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if name == "folder":
            watcher = FolderWatcher(rt.settings.drop_dir, bus=rt.bus, blobs=rt.blobs,
                                    poll_s=rt.settings.serve.drop_poll_s, stop=stop)
            out.print(f"watching {rt.settings.drop_dir}")
            watcher.run()
            return
        try:
            run_connector(name, rt.settings.connectors, bus=rt.bus, blobs=rt.blobs, data_dir=rt.settings.data_dir,
                          stop=stop, host=host, port=port, trusted_proxies=rt.settings.serve.trusted_proxies)
        except ValueError as exc:
            _fail(str(exc), 2)


def _age(text: str | None) -> timedelta | None:
    """``30m``, ``12h``, ``7d`` -> a timedelta (for --older-than)."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in units or not value.replace(".", "", 1).isdigit():
        _fail(f"--older-than {text!r}: give a number and a unit, e.g. 30m, 12h or 7d", 2)
    return timedelta(seconds=float(value) * units[unit])


ItemOpt = Annotated[list[str] | None, typer.Option("--item", help="only this item id (repeatable)")]
StageOpt = Annotated[str | None, typer.Option("--stage", help="only this stage: extract, classify or file")]
ErrorOpt = Annotated[str | None, typer.Option("--error-class", help="only this error class, e.g. PdfEncrypted")]
AgeOpt = Annotated[str | None, typer.Option("--older-than", help="only entries whose last failure is older, e.g. 1h")]


def _filters(item: list[str] | None, stage: str | None, error_class: str | None, older_than: str | None) -> Filters:
    from api.dead_letter_ops import Filters

    return Filters(items=tuple(item or ()), stage=stage, error_class=error_class, older_than=_age(older_than))


@dlq_app.command("list")
def dlq_list(as_json: Annotated[bool, typer.Option("--json")] = False,
             include_handled: Annotated[bool, typer.Option("--all", help="also entries already replayed or discarded")]
             = False,
             item: ItemOpt = None, stage: StageOpt = None, error_class: ErrorOpt = None, older_than: AgeOpt = None,
             ) -> None:
    """Dead letters, one entry per item and stage: attempts, newest error, and its state."""
    from api.dead_letter_ops import list_entries

    with runtime() as rt:
        listed = list_entries(rt, filters=_filters(item, stage, error_class, older_than),
                              include_handled=include_handled)
    if as_json:
        _print_json([{"item_id": x.entry.item_id, "stage": x.entry.stage, "topic": x.entry.topic,
                      "error_class": x.entry.error_class, "message": x.entry.message, "retryable": x.entry.retryable,
                      "attempts": x.entry.attempts, "first_failed_at": x.entry.first_failed_at,
                      "failed_at": x.entry.last_failed_at, "state": x.state} for x in listed])
        return
    table = Table("last failed", "item", "stage", "attempts", "state", "error", "message")
    for x in listed:
        table.add_row(str(x.entry.last_failed_at), x.entry.item_id or "", x.entry.stage, str(x.entry.attempts),
                      x.state, x.entry.error_class, x.entry.message)
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(item: ItemOpt = None, stage: StageOpt = None, error_class: ErrorOpt = None, older_than: AgeOpt = None,
               wait: Annotated[float, typer.Option(help="wait up to this many seconds and report each outcome "
                                                        "(needs the stages running: casework serve)")] = 0.0,
               reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
               ) -> None:
    """Publish each outstanding dead-letter entry once (newest envelope) back to the topic it failed on."""
    from api.dead_letter_ops import replay_entries, wait_for_outcomes
    from ingest.messages import utcnow

    with runtime() as rt:
        started = utcnow()
        replayed = replay_entries(rt, filters=_filters(item, stage, error_class, older_than),
                                  actor=_os_user(), reason=reason)
        out.print(f"{len(replayed)} dead-letter entries replayed")
        if wait > 0 and replayed:
            outcomes = wait_for_outcomes(rt, replayed, since=started, timeout=wait)
            again = sorted(i for i, o in outcomes.items() if o == "failed")
            done = len(outcomes) - len(again)
            pending = len([e for e in replayed if e.item_id]) - len(outcomes)
            out.print(f"{done} filed, {len(again)} failed again, {pending} not settled within {wait:g} s")
            for item_id in again:
                out.print(f"  failed again: {item_id}")
            if again:
                raise typer.Exit(1)


@dlq_app.command("discard")
def dlq_discard(reason: Annotated[str, typer.Option(help="why nobody will fix these (audit trail)")],
                item: ItemOpt = None, stage: StageOpt = None, error_class: ErrorOpt = None,
                older_than: AgeOpt = None,
                everything: Annotated[bool, typer.Option("--all", help="every outstanding entry")] = False) -> None:
    """Give up on dead-letter entries: they leave the list until the item fails again."""
    from api.dead_letter_ops import discard_entries

    filters = _filters(item, stage, error_class, older_than)
    if filters.empty and not everything:
        _fail("say which entries: --item, --stage, --error-class, --older-than, or --all", 2)
    if not reason.strip():
        _fail("give a --reason: it goes into the audit trail", 2)
    with runtime() as rt:
        discarded = discard_entries(rt, filters=filters, actor=_os_user(), reason=reason.strip())
    out.print(f"{len(discarded)} dead-letter entries discarded")


def _os_user() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@bus_app.command("prune")
def bus_prune(older_than_hours: Annotated[float | None, typer.Option(
        help="delete consumed records older than this (default: CASEWORK_BUS__RETENTION_HOURS)")] = None) -> None:
    """Delete the records every consumer group has handled (``serve`` does this every 10 minutes)."""
    with runtime() as rt:
        bus = _sqlite_bus(rt.bus)
        hours = older_than_hours if older_than_hours is not None else rt.settings.bus.retention_hours
        if hours is None:
            _fail("no retention is set: give --older-than-hours or set CASEWORK_BUS__RETENTION_HOURS", 2)
        n = bus.prune(hours * 3600)
    out.print(f"{n} records pruned from {bus.path}")


@bus_app.command("forget-group")
def bus_forget_group(group: str) -> None:
    """Remove a consumer group that will not run again, so its offsets stop holding records back."""
    with runtime() as rt:
        bus = _sqlite_bus(rt.bus)
        if group not in bus.groups():
            _fail(f"no consumer group {group!r} on {bus.path}; groups: {', '.join(bus.groups()) or 'none'}", 2)
        try:
            bus.forget_group(group)
        except ValueError as exc:
            _fail(str(exc), 2)
    out.print(f"consumer group {group} forgotten")


def _sqlite_bus(bus: object) -> SqliteBus:
    from ingest.bus.sqlite_log import SqliteBus

    if not isinstance(bus, SqliteBus):
        _fail("this is for the embedded SQLite bus; on Kafka use the topics' retention.ms and "
              "kafka-consumer-groups --delete", 2)
    return bus


@triage_app.command("list")
def triage_list(as_json: Annotated[bool, typer.Option("--json")] = False,
                limit: Annotated[int, typer.Option(help="at most this many")] = 100) -> None:
    """The triage queue, oldest first, with the matcher's reason and candidate cases."""
    from casestore import access, triage

    with runtime() as rt, rt.read_sessions() as session:
        queue = triage.triage_queue(session, viewer=access.OPERATOR, limit=limit)
    if as_json:
        _print_json(queue)
        return
    table = Table("item", "received", "from", "subject", "reason", "candidates")
    for q in queue:
        table.add_row(q["item_id"], q["received_at"], q["sender"] or "", q["subject"] or "", q["reason"],
                      ", ".join(q["candidates"]))
    out.print(table)


@calendar_app.command("recompute")
def calendar_recompute(
    name: Annotated[str, typer.Argument(help="the calendar that changed (its file's name without .yaml)")],
    batch: Annotated[int | None, typer.Option(
        help="clocks per committed batch (default 5000 on PostgreSQL; 1000 on SQLite, whose one writer lock "
             "each batch holds while it writes)", min=1, max=100_000)] = None,
    rate: Annotated[float, typer.Option(
        help="at most this many clocks a second (0: as fast as the database takes them). Each batch's writes "
             "(a clock and its tasks' index entries, their WAL) compete with get-next's commits for the WAL "
             "flush: a slower, steadier change leaves agents' get-next faster (BENCHMARKS.md, issue 10)",
        min=0)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """After editing a calendar (a holiday added, hours changed): re-compute the due and warning
    times of its running clocks, in committed batches.  A running `casework serve` (and file-stage
    worker) loads the changed calendar by itself within CASEWORK_WORK__RELOAD_CHECK_S seconds, so
    clocks started from then on use it."""
    import time

    from casestore.db import translate_errors
    from casestore.work.calendar_change import Moments, plan_batch, write_batch
    from casestore.work.calendar_config import load_calendars
    from casestore.work.clocks import calendar_named

    calendar = calendar_named(load_calendars(get_settings().calendars_dir), name)
    moments = Moments(calendar)  # clocks that started together are computed once
    began, cpu = time.perf_counter(), time.process_time()
    totals = {"clocks": 0, "moved": 0, "tasks": 0, "batches": 0, "passes": 0}
    with runtime() as rt, translate_errors():
        sqlite = rt.engine.dialect.name == "sqlite"
        size = batch or (1000 if sqlite else 5000)
        skipped = 1
        while skipped:  # PostgreSQL skips clocks the engine holds this moment: another pass takes them
            after, skipped = 0, 0
            totals["passes"] += 1
            while True:
                with rt.read_sessions() as session, session.begin():  # reading and computing: no locks held
                    plan = plan_batch(session, calendar_name=name, calendar=calendar, after=after, limit=size,
                                      moments=moments)
                wrote = time.perf_counter()
                with rt.sessions() as session, session.begin():  # a short write: get-next never waits long
                    result = write_batch(session, plan)
                if sqlite and result.moved:  # leave the one writer lock free as long as it was held (at most
                    # 0.1 s), or other processes' writers, asleep in their busy handlers, never get it back
                    time.sleep(min(0.1, time.perf_counter() - wrote))
                if rate and result.clocks:  # paced: the clocks so far at ``rate`` a second
                    time.sleep(max(0.0, began + (totals["clocks"] + result.clocks) / rate - time.perf_counter()))
                if result.clocks:
                    totals["batches"] += 1
                    totals["clocks"] += result.clocks - result.skipped
                    totals["moved"] += result.moved
                    totals["tasks"] += result.tasks
                    skipped += result.skipped
                after = result.last_id
                if result.done:
                    break
    seconds = round(time.perf_counter() - began, 2)
    if as_json:
        _print_json({"calendar": name, **totals, "seconds": seconds,
                     "cpu_s": round(time.process_time() - cpu, 2)})  # this process's CPU (the database's is not in it)
    else:
        out.print(f"calendar {name}: {totals['clocks']} running clock(s) re-computed, {totals['moved']} moved, "
                  f"{totals['tasks']} task(s) re-timed, in {totals['batches']} batch(es), {seconds}s")


@triage_app.command("next")
def triage_next(as_user: Annotated[str, typer.Option("--as", help="who takes it (a user of the triage team)")],
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Claim the oldest waiting triage item you may see, with a lease; exit code 3 when there is none."""
    from datetime import timedelta

    from casestore import triage_leases, users
    from casestore.access import principal_of
    from casestore.db import translate_errors
    from casestore.models import utcnow

    with runtime() as rt, translate_errors(), rt.sessions() as session, session.begin():
        viewer = principal_of(users.get_user(session, name=as_user))
        claimed = triage_leases.next_item(session, viewer=viewer, team=rt.settings.work.triage_team,
                                         lease=timedelta(minutes=rt.settings.work.triage_lease_minutes), now=utcnow())
        row = None if claimed is None else {
            "item_id": claimed.item.item_id, "subject": claimed.item.subject, "sender": claimed.item.sender,
            "reason": (claimed.item.decision or {}).get("reason", ""),
            "lease_expires_at": claimed.lease_expires_at.isoformat(), "lease_version": claimed.lease_version}
    if as_json:
        _print_json({"item": row})
    elif row is None:
        out.print("nothing waiting in triage")
    else:
        out.print(f"{row['item_id']}: {row['subject'] or ''} from {row['sender'] or '?'} ({row['reason']}); "
                  f"yours until {row['lease_expires_at']}")
    if row is None:
        raise typer.Exit(3)


@triage_app.command("release")
def triage_release(item_id: str,
                   as_user: Annotated[str, typer.Option("--as", help="who holds it")],
                   reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "") -> None:
    """Give back a triage item you hold."""
    from casestore import triage_leases, users
    from casestore.access import principal_of
    from casestore.db import translate_errors
    from casestore.models import utcnow

    with runtime() as rt, translate_errors(), rt.sessions() as session, session.begin():
        viewer = principal_of(users.get_user(session, name=as_user))
        triage_leases.release(session, item_id=item_id, viewer=viewer, now=utcnow(), reason=reason)
    out.print(f"{item_id}: released")


@triage_app.command("resolve")
def triage_resolve(
    item_id: str,
    attach: Annotated[str | None, typer.Option(help="attach to this case reference")] = None,
    new_case: Annotated[bool, typer.Option("--new-case", help="open a new case for it")] = False,
    noise: Annotated[bool, typer.Option("--noise", help="mark it as noise")] = False,
    customer: Annotated[str | None, typer.Option(help="CRM id of the new case's customer")] = None,
    doc_type: Annotated[str | None, typer.Option(help="the correct document type")] = None,
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "",
    actor: Annotated[str, typer.Option("--as", help="who resolves it")] = "cli",
) -> None:
    """Resolve a triaged item: --attach REF, --new-case [--customer ID] or --noise. Recorded as a label.

    The case's work follows as when the pipeline files an item: a new case starts its type's work;
    an attached item is the customer's reply (a closed case reopens within its reopen window, or a
    new case linked to it opens)."""
    from casestore import access, triage

    chosen = [a for a, on in (("attach", attach is not None), ("new_case", new_case), ("noise", noise)) if on]
    if len(chosen) != 1:
        _fail("give exactly one of --attach REF, --new-case or --noise", 2)
    from api.search_follow import UPDATED, index_now
    from casestore.search import outbox as search_outbox
    from casestore.work.inbound import InboundWork

    with runtime() as rt:
        work = InboundWork(rt.work)  # loaded (and stored) before the resolution's transaction
        with rt.sessions() as session, session.begin():
            res = triage.resolve_triage(session, item_id=item_id, action=chosen[0], case_ref=attach,
                                        viewer=access.OPERATOR, actor=actor, reason=reason, customer_id=customer,
                                        doc_type=doc_type, work=work)
            # search must see it where it now is (its case's team): with the resolution
            outbox_ids = search_outbox.enqueue(session, item_ids=[res.item_id])
        search = index_now(rt, outbox_ids, what=f"triage {res.item_id} resolved")
    out.print(f"{res.item_id}: {res.outcome} {res.case_ref or ''} ({res.doc_type})")
    if search != UPDATED:
        err.print(f"search is not updated yet: {search} (by `casework serve`; or run `casework reindex`)",
                  highlight=False)


@train_app.command("doctype")
def train_doctype(
    file: Annotated[
        Path | None, typer.Argument(help="labelled CSV (header row); omit to retrain from corrections")
    ] = None,
    text_column: Annotated[str, typer.Option(help="column holding the text")] = "text",
    label_column: Annotated[str, typer.Option(help="column holding the document type")] = "doc_type",
) -> None:
    """Train the document-type model from a labelled CSV, plus every triage correction so far.

    Without FILE, retrain the existing model with the corrections agents made in triage.
    The model is saved where the pipeline loads it (CASEWORK_MATCH__DOC_TYPE_MODEL, default
    DATA_DIR/models/doctype.joblib); restart `serve`/workers to use it.
    """
    import csv

    from casestore import triage
    from classify.doctype_model import DocTypeModel

    examples: list[tuple[str, str]] = []
    if file is not None:
        csv.field_size_limit(10_000_000)
        with file.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {text_column, label_column} - set(reader.fieldnames or [])
            if missing:
                columns = ", ".join(reader.fieldnames or [])
                _fail(f"{file} has no column {', '.join(sorted(missing))}; its columns: {columns}", 2)
            examples = [(row[text_column], row[label_column]) for row in reader
                        if row.get(text_column) and row.get(label_column)]
    with runtime() as rt:
        with rt.read_sessions() as session:
            corrections = triage.doc_type_examples(session)
        path = rt.settings.doc_type_model_path
        if file is None:
            if not path.is_file():
                _fail(f"no model at {path} to retrain: train one from a labelled CSV first", 2)
            model = DocTypeModel.load(path).retrain(corrections)
        else:
            model = DocTypeModel.train([*examples, *corrections])
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    out.print(f"model with {len(model.labels)} types from {len(examples)} examples and "
              f"{len(corrections)} corrections saved to {path}")


def _register_more_commands() -> None:
    from api import customer_cli, outbound_cli, search_cli, setup_cli, user_cli

    outbound_cli.register(case_app, outbox_app, letters_app)
    customer_cli.register(app)

    app.command("setup")(setup_cli.setup)
    app.command("search")(search_cli.search)
    app.command("reindex")(search_cli.reindex)
    import_app.command("documents")(search_cli.import_documents)
    user_cli.register(user_app, token_app)


_register_more_commands()


def _register_queue_commands() -> None:
    from api import queue_cli

    app.add_typer(queue_cli.work_app, name="work")
    app.add_typer(queue_cli.queue_app, name="queue")
    app.add_typer(queue_cli.task_app, name="task")


_register_queue_commands()


def _register_work_commands() -> None:
    from api import notification_cli, queue_cli, work_cli

    work_cli.register(queue_cli.task_app, case_app)
    notification_cli.register(app)


_register_work_commands()


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:  # a CASEWORK_ setting that does not parse: say which, not a traceback
        if exc.title != "Settings":
            raise
        for e in exc.errors():
            name = "CASEWORK_" + "__".join(str(part) for part in e["loc"]).upper()
            err.print(f"[red]error:[/red] setting {name}={e.get('input')!r}: {e['msg']}", highlight=False)
        sys.exit(2)
