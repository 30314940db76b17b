"""`casework customer reviews|merge|dismiss`: prospects a CRM customer may be (casestore.prospects).

A customer import merges a prospect (``P-...``) into the CRM customer with the same email
address by itself; the other likely matches (same phone, or same email under another name) wait
here for a person.  Register on the main app (api/cli.py) with ``register(app)``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated

import typer
from rich.table import Table

from api.cli_support import err, out, runtime

log = logging.getLogger(__name__)

customer_app = typer.Typer(help="Customers: prospects a CRM customer may be (review, merge, dismiss).",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(customer_app, name="customer")


@customer_app.command("reviews")
def reviews(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Prospects that may be a CRM customer, waiting for a person to merge or dismiss them."""
    from casestore.prospects import open_reviews

    with runtime() as rt, rt.read_sessions() as session:
        found = open_reviews(session)
    if as_json:
        sys.stdout.write(json.dumps([r.__dict__ for r in found], indent=2) + "\n")
        return
    table = Table("prospect", "wrote as", "customer", "CRM name", "matched on", "cases")
    for r in found:
        table.add_row(r.prospect_id, r.prospect_name, r.customer_id, r.customer_name,
                      r.matched_on.replace("_", " "), ", ".join(r.cases))
    out.print(table)
    out.print(f"{len(found)} to review: `casework customer merge PROSPECT CUSTOMER` or "
              "`casework customer dismiss PROSPECT CUSTOMER`")


@customer_app.command("merge")
def merge(
    prospect: Annotated[str, typer.Argument(help="the prospect's id (P-...)")],
    customer: Annotated[str, typer.Argument(help="the CRM customer's id")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "a person decided they are the same",
    actor: Annotated[str, typer.Option(help="who decided (kept in the audit trail)")] = "operator",
) -> None:
    """Merge a prospect into a CRM customer: their cases move to the customer, the prospect retires."""
    from api import customer_ops

    with runtime() as rt:
        done = customer_ops.merge(rt, prospect=prospect, customer=customer, actor=actor, reason=reason)
    moved = done.moved
    out.print(f"{prospect} merged into {customer}: {len(moved)} case(s) moved" + (f" ({', '.join(moved)})"
                                                                               if moved else ""))
    if not done.search_updated:
        out.print(f"search is not updated yet ({done.search})")


@customer_app.command("dismiss")
def dismiss(
    prospect: Annotated[str, typer.Argument(help="the prospect's id (P-...)")],
    customer: Annotated[str, typer.Argument(help="the CRM customer's id")],
    actor: Annotated[str, typer.Option(help="who decided (kept in the audit trail)")] = "operator",
) -> None:
    """Record that a prospect is not this CRM customer (the review closes; a re-import keeps it closed)."""
    from api import customer_ops

    with runtime() as rt:
        customer_ops.dismiss(rt, prospect=prospect, customer=customer, actor=actor)
    err.print(f"{prospect} is not {customer}: review closed")
