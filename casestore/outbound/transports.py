"""Handing a message to its provider: the SMTP relay (smtplib) and Twilio's REST API.

Each transport takes the message and ``point_of_no_return``, a callable the transport calls
just before the step that cannot be taken back, and must not take that step unless it returns
True (the sender records ``committing`` there, see ``outbox``):

- SMTP: connect, STARTTLS or TLS, AUTH, MAIL, RCPT, DATA and the message's lines are sent
  first; only the final ``.`` is held back.  A relay keeps nothing of a transaction whose final
  dot never came (RFC 5321 4.1.1.4), so a failure up to there is safely retried.  After the dot,
  the relay's answer decides; no answer (the connection broke) is ``SendUncertain``.
- Twilio: the POST that creates the message is the step.  A refusal with a status (4xx) is
  definite; a broken connection or a 5xx after the POST went out is ``SendUncertain``.  The
  status callback URL carries our id, so Twilio's callback settles an uncertain send.

Outcomes: a ``Delivery`` (the provider's id), or one of the errors below.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Protocol
from urllib.parse import urlencode

from casestore.errors import CaseStoreError
from casestore.outbound.outbox import Claimed

log = logging.getLogger(__name__)

PointOfNoReturn = Callable[[], bool]
_QUEUED_AS = re.compile(r"queued as ([^\s;]+)", re.IGNORECASE)
MAX_MESSAGES_PER_CONNECTION = 100
PERMANENT_TWILIO_CODES = frozenset({21211, 21212, 21214, 21217, 21407, 21408, 21606, 21610, 21612, 21614})


@dataclass(frozen=True)
class Delivery:
    provider_id: str
    raw: bytes | None = None  # the exact bytes sent, filed in the folder (email)
    segments: int | None = None


class SendError(CaseStoreError):
    """A send did not succeed; the subclass says what the sender does next."""


class SendRetry(SendError):
    """Not sent; may work later (relay down, 4xx, Twilio 429): retried with backoff."""

    retryable = True


class SendRejected(SendError):
    """Not sent, and retrying will not help (5xx, invalid number); ``flag``: the address is bad."""

    def __init__(self, message: str, *, flag: bool = False) -> None:
        super().__init__(message)
        self.flag = flag


class SendUncertain(SendError):
    """The final step was taken and no answer came: the provider may have the message."""


class ClaimLost(SendError):
    """Another sender took the message over (our lease ran out); nothing was sent by us."""


class Transport(Protocol):
    def send(self, msg: Claimed, data: bytes | None, *, point_of_no_return: PointOfNoReturn) -> Delivery: ...

    def close(self) -> None:
        """Release what was kept between messages (a connection); called after each round."""
        ...


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    user: str = ""
    password: str = ""
    timeout_s: float = 30.0
    local_hostname: str | None = None


def _smtp_lines(data: bytes) -> bytes:
    """CRLF line ends, leading dots doubled, ending in CRLF: the DATA body without its final dot."""
    data = re.sub(rb"\r\n|\n|\r", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _answer(code: int, text: bytes | str, what: str) -> SendError:
    reply = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).strip()
    if 500 <= code < 600:
        return SendRejected(f"the relay refused {what}: {code} {reply}", flag=what == "the recipient")
    return SendRetry(f"the relay deferred {what}: {code} {reply}")


class SmtpTransport:
    """Email through the configured relay.  A connection is kept for the messages of one round
    (at most ``MAX_MESSAGES_PER_CONNECTION``), and closed after any failure."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._local_hostname: str | None = config.local_hostname
        self._context: ssl.SSLContext | None = None
        self._smtp: smtplib.SMTP | None = None
        self._uses = 0

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if self._local_hostname is None:  # smtplib would ask DNS on every connection
            self._local_hostname = socket.getfqdn()
        if self._context is None and c.security != "none":
            self._context = ssl.create_default_context()
        context = self._context
        smtp: smtplib.SMTP
        if c.security == "tls":
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=context,
                                    local_hostname=self._local_hostname)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s, local_hostname=self._local_hostname)
        if smtp.sock is not None:  # the end-of-data dot is a small write after the message: do not let
            # Nagle's algorithm hold it until the relay's delayed ACK (~40 ms a message)
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo()
        if c.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if c.user:
            smtp.login(c.user, c.password)
        return smtp

    def send(self, msg: Claimed, data: bytes | None, *, point_of_no_return: PointOfNoReturn) -> Delivery:
        if not self.config.host:
            raise SendRetry("no SMTP relay is configured: set CASEWORK_OUTBOUND__SMTP_HOST (and port, security, "
                            "user, password)")
        assert data is not None, "an email is sent as bytes"
        sender = parseaddr(msg.from_address)[1]
        recipient = parseaddr(msg.recipient)[1] or msg.recipient
        for fresh in (self._smtp is None, True):  # a kept connection the relay closed meanwhile: once more
            smtp = self._open()
            try:
                delivery = self._transaction(smtp, msg, data, sender, recipient, point_of_no_return)
            except SendRetry:
                self.close()
                if fresh:
                    raise
                continue
            except BaseException:
                self.close()  # never reuse a connection in an unknown state (a DATA without its dot, say)
                raise
            self._uses += 1
            if self._uses >= MAX_MESSAGES_PER_CONNECTION:
                self.close()
            return delivery
        raise AssertionError("unreachable")

    def _open(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        try:
            self._smtp = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            raise SendRetry(f"the relay refused our login ({exc.smtp_code}); check CASEWORK_OUTBOUND__SMTP_USER "
                            "and SMTP_PASSWORD") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendRetry(f"cannot reach the relay {self.config.host}:{self.config.port} "
                            f"({type(exc).__name__}: {exc})") from None
        self._uses = 0
        return self._smtp

    def close(self) -> None:
        """End the kept connection (QUIT); the sender calls this at the end of each round."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()
            with contextlib.suppress(OSError):
                smtp.close()

    def _transaction(self, smtp: smtplib.SMTP, msg: Claimed, data: bytes, sender: str, recipient: str,
                     point_of_no_return: PointOfNoReturn) -> Delivery:
        try:
            options = ["SMTPUTF8"] if not (sender + recipient).isascii() and smtp.has_extn("smtputf8") else []
            code, text = smtp.mail(sender, options)
            if code != 250:
                raise _answer(code, text, "the sender address")
            code, text = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise _answer(code, text, "the recipient")
            smtp.putcmd("data")
            code, text = smtp.getreply()
            if code != 354:
                raise _answer(code, text, "the message (DATA)")
            smtp.send(_smtp_lines(data))
        except (OSError, smtplib.SMTPException) as exc:
            raise SendRetry(f"the relay connection failed before the end of the message "
                            f"({type(exc).__name__}: {exc})") from None
        if not point_of_no_return():
            raise ClaimLost(f"message {msg.id} was taken over by another sender; not finished here")
        try:
            smtp.send(b".\r\n")
            code, text = smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            raise SendUncertain(f"the relay did not answer the end of the message ({type(exc).__name__})") from None
        if code != 250:
            raise _answer(code, text, "the message")
        reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        queued = _QUEUED_AS.search(reply)
        return Delivery(provider_id=queued.group(1) if queued else (msg.message_id or reply[:200]), raw=data)


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str
    api_base_url: str = ""  # empty: https://api.twilio.com
    status_callback_url: str = ""  # our /webhooks/twilio/status as Twilio reaches it; empty: no callbacks
    timeout_s: float = 30.0


def status_callback_for(base: str, outbound_id: str) -> str:
    if not base:
        return ""
    return f"{base}{'&' if '?' in base else '?'}{urlencode({'outbound': outbound_id})}"


class TwilioTransport:
    """SMS through Twilio's Messages API (twilio's own client)."""

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped,unused-ignore]
            from twilio.rest import Client  # type: ignore[import-untyped,unused-ignore]

            c = self.config
            self._client = Client(c.account_sid, c.auth_token, http_client=TwilioHttpClient(timeout=c.timeout_s))
            if c.api_base_url:
                self._client.api.base_url = c.api_base_url.rstrip("/")
        return self._client

    def close(self) -> None:
        """Nothing to release: the HTTP client keeps its own pool."""

    def send(self, msg: Claimed, data: bytes | None, *, point_of_no_return: PointOfNoReturn) -> Delivery:
        import requests
        from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped,unused-ignore]

        c = self.config
        if not (c.account_sid and c.auth_token and c.from_number):
            raise SendRetry("SMS needs CASEWORK_CONNECTORS__TWILIO__ACCOUNT_SID, AUTH_TOKEN and FROM_NUMBER")
        client = self.client()
        kwargs: dict[str, Any] = {"to": msg.recipient, "from_": msg.from_address or c.from_number,
                                  "body": msg.body.strip()}
        callback = status_callback_for(c.status_callback_url, msg.id)
        if callback:
            kwargs["status_callback"] = callback
        if not point_of_no_return():
            raise ClaimLost(f"message {msg.id} was taken over by another sender; not sent here")
        try:
            created = client.messages.create(**kwargs)
        except TwilioRestException as exc:
            if exc.status == 429:
                raise SendRetry(f"Twilio is rate limiting us (429 {exc.code})") from None
            if exc.status in (401, 403):
                raise SendRetry(f"Twilio refused our credentials ({exc.status}); check the account SID and "
                                "auth token") from None
            if 400 <= exc.status < 500:
                code = int(exc.code or 0)
                raise SendRejected(f"Twilio refused the SMS: {exc.status} code {exc.code}: {exc.msg}",
                                   flag=code in PERMANENT_TWILIO_CODES) from None
            raise SendUncertain(f"Twilio answered {exc.status} to the POST") from None
        except requests.exceptions.ConnectionError as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout) or _refused(exc):
                raise SendRetry(f"cannot reach Twilio ({type(exc).__name__})") from None
            raise SendUncertain(f"the connection to Twilio broke during the POST ({type(exc).__name__})") from None
        except requests.exceptions.Timeout:
            raise SendUncertain("Twilio did not answer the POST in time") from None
        segments = int(created.num_segments) if str(created.num_segments or "").isdigit() else None
        log.info("twilio: SMS %s for outbound %s (%s segments)", created.sid, msg.id, segments)
        return Delivery(provider_id=str(created.sid), segments=segments)


def _refused(exc: BaseException) -> bool:
    """Whether the connection was never made (refused, no route, name unknown): nothing was sent."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)  # NameResolutionError is one too
