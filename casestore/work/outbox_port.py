"""What the engine needs of outbound correspondence, declared here so that ``casestore.work``
never imports ``casestore.outbound`` (the composition root passes ``casestore.outbound.task_outbox``).

A task definition may send a message when it completes with a code (``on_complete``) and may
require that a message went out for it before it completes (``requires_outbound``); both run in
the completion's own transaction, through these two methods.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from sqlalchemy.orm import Session

from casestore.errors import CaseStoreError
from casestore.models import Case


class OutboxMissing(CaseStoreError):
    """The task sends or needs a message, and the caller gave the engine no outbox: a wiring fault
    (never silently skipped: the completion is refused, nothing is lost)."""

    http_status = 500


class KnownTemplates(Protocol):
    """The message templates that exist (``casestore.outbound.templates.Templates`` is one): the
    definition checks refuse an ``on_complete.send`` naming a template there is none of."""

    def template_names(self, *, case_type: str, channel: str) -> Collection[str]:
        """The names of the templates a case of ``case_type`` may send on ``channel``."""
        ...


class TaskOutbox(Protocol):
    def send_for_task(self, session: Session, *, case: Case, task_id: int, template: str, channel: str,
                      actor: str, fields: Mapping[str, str], idempotency_key: str) -> str:
        """Queue the message in ``session``'s transaction (automatic: a recipient problem holds it
        for a person instead of failing the completion); its outbound id.  The same key again
        queues nothing new."""
        ...

    def sent_for_task(self, session: Session, *, task_id: int) -> int:
        """How many messages for the task are queued or went (not held, failed or bounced)."""
        ...
