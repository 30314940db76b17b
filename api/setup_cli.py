"""`casework setup`: what a new deployment needs before its services start, safe to run again
(the compose stack's one-shot ``init`` service runs it on every ``docker compose up``):

1. the case store migrated to the schema this version ships (``casework`` migrates on any command;
   this says so and to which revision);
2. on Kafka, the pipeline's topics created with ``CASEWORK_BUS__PARTITIONS`` partitions before any
   worker subscribes (a topic's partition count is the most workers a stage can use at once);
3. the first admin, created when missing, with the password read from standard input; an existing
   user of that name is left as it is (its password is not reset).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from api.cli_support import fail, out, runtime
from casestore import users
from casestore.db import schema_revision
from casestore.errors import NotFound
from casestore.signin.passwords import set_password
from ingest.messages import TOPIC_CLASSIFIED, TOPIC_DEAD, TOPIC_EXTRACTED, TOPIC_RAW

PIPELINE_TOPICS = (TOPIC_RAW, TOPIC_EXTRACTED, TOPIC_CLASSIFIED, TOPIC_DEAD)


def setup(
    admin: Annotated[str, typer.Option(help="name of the first admin, created when missing; empty: none")] = "",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="the new admin's workbench password on the first line of standard input")] = False,
) -> None:
    """Migrate the store, create the bus topics and the first admin; idempotent (for an init container)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    if password_stdin and not password:
        fail("--password-stdin: standard input had no password on its first line", 2)
    with runtime() as rt:
        out.print(f"case store at schema {schema_revision(rt.engine)}: "
                  f"{rt.engine.url.render_as_string(hide_password=True)}", soft_wrap=True)
        ensure_topics = getattr(rt.bus, "ensure_topics", None)
        if ensure_topics is not None:  # Kafka: the embedded log makes its topics on first use
            ensure_topics(list(PIPELINE_TOPICS))
            out.print(f"bus topics ready: {', '.join(PIPELINE_TOPICS)} ({rt.settings.bus.partitions} partitions "
                      "when created now; existing topics keep theirs)", soft_wrap=True)
        if not admin:
            return
        with rt.sessions() as session, session.begin():
            try:
                found = users.get_user(session, name=admin)
            except NotFound:
                users.add_user(session, name=admin, role="admin")
                if password is not None:
                    set_password(session, name=admin, password=password)  # a weak one: nothing is created
                out.print(f"admin {admin} created" + ("" if password is not None else
                          f"; give it a password with `casework user passwd {admin}`"))
                return
            out.print(f"user {found.name} exists already (role {found.role}): left as it is")
