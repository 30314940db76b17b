"""Outbound correspondence wired from the settings: the policy, the templates, the sender.

The sender runs as a thread of `casework serve` on the embedded default
(``CASEWORK_OUTBOUND__RUN_SENDER``), or as `casework worker sender` in production; several
senders may run at once (each claims its own messages).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from api.settings import Settings
from api.wiring import Runtime
from casestore.outbound.drafts import OutboxPolicy
from casestore.outbound.letters import find_font
from casestore.outbound.sender import Sender, SenderConfig
from casestore.outbound.templates import Templates
from casestore.outbound.transports import SmtpConfig, SmtpTransport, Transport, TwilioConfig, TwilioTransport

log = logging.getLogger(__name__)


def outbox_policy(settings: Settings) -> OutboxPolicy:
    o = settings.outbound
    return OutboxPolicy(
        from_address=o.from_address, team_from=dict(o.team_from), signature=o.signature,
        team_signature=dict(o.team_signature), sms_from=settings.connectors.twilio.from_number,
        message_id_domain=o.message_id_domain, phone_region=settings.match.phone_region,
        rate_limit_per_day=o.rate_limit_per_day, max_sms_segments=o.max_sms_segments,
        letter_return_address=o.letter_return_address)


def templates(settings: Settings) -> Templates:
    folder = settings.outbound.templates_dir
    return Templates([Path(folder)] if folder else [])


def transports(settings: Settings) -> dict[str, Transport]:
    o, tw = settings.outbound, settings.connectors.twilio
    return {
        "email": SmtpTransport(SmtpConfig(host=o.smtp_host, port=o.smtp_port, security=o.smtp_security,
                                          user=o.smtp_user, password=o.smtp_password, timeout_s=o.smtp_timeout_s)),
        "sms": TwilioTransport(TwilioConfig(account_sid=tw.account_sid, auth_token=tw.auth_token,
                                            from_number=tw.from_number, api_base_url=tw.api_base_url,
                                            status_callback_url=o.sms_status_callback_url)),
    }


def make_sender(rt: Runtime) -> Sender:
    o = rt.settings.outbound
    config = SenderConfig(batch_size=o.batch_size, claim_lease_s=o.claim_lease_s, max_attempts=o.max_attempts,
                          backoff_initial_s=o.backoff_initial_s, backoff_max_s=o.backoff_max_s, poll_s=o.poll_s,
                          letter_font=find_font(o.letter_font))
    return Sender(sessions=rt.sessions, blobs=rt.blobs, transports=transports(rt.settings), config=config,
                  listen_engine=rt.engine)


class SenderThread:
    """The sender as a thread of `casework serve`."""

    def __init__(self, rt: Runtime, stop: threading.Event) -> None:
        self.sender = make_sender(rt)
        self.stop = stop
        self.thread = threading.Thread(target=self.sender.run, args=(stop,), name="outbox-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def state(self) -> str:
        if not self.thread.is_alive():
            return "stopped"
        return f"running (last round failed: {self.sender.last_error})" if self.sender.last_error else "running"

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
