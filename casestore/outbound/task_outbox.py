"""The outbox as the work engine sees it (``casestore.work.outbox_port.TaskOutbox``): a task's
completion queues its message in the same transaction, and a task that requires a message asks
whether one went out for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.models import Case
from casestore.outbound.drafts import OutboxPolicy
from casestore.outbound.models import OutboundMessage
from casestore.outbound.services import queue_message
from casestore.outbound.templates import Templates

NOT_GONE = ("held", "failed", "bounced")  # these never reached the customer (yet): a person acts


@dataclass(frozen=True)
class OutboxForTasks:
    policy: OutboxPolicy
    templates: Templates

    def send_for_task(self, session: Session, *, case: Case, task_id: int, template: str, channel: str,
                      actor: str, fields: Mapping[str, str], idempotency_key: str) -> str:
        """Queued as an automatic message (a recipient problem holds it, shown in the case and
        ``/ops``, instead of refusing the completion); the engine has checked who may act."""
        return queue_message(session, case_ref=case.ref, channel=channel, actor=actor, policy=self.policy,
                             templates=self.templates, template=template, fields=fields, automatic=True,
                             idempotency_key=idempotency_key, task_id=task_id).id

    def sent_for_task(self, session: Session, *, task_id: int) -> int:
        return int(session.scalar(
            select(func.count()).select_from(OutboundMessage)
            .where(OutboundMessage.task_id == task_id, OutboundMessage.state.not_in(NOT_GONE))) or 0)
