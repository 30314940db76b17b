"""Refusing an API request from its headers, before its body is read (pure ASGI middleware).

FastAPI reads and parses a route's body (a multipart upload spooled to temporary files, a JSON
document in memory) before it runs the route's dependencies, so a bearer-token dependency alone
refuses a stranger's 1 GiB upload only after taking all of it. This middleware sits in front: for
a request that carries a body (a ``Content-Length`` above 0, or ``Transfer-Encoding``) under one of
its rules' path prefixes it

- checks the bearer token (present, and valid in the store) before reading a byte: 401; a
  request without one may instead carry a workbench session cookie, checked the same way (live
  session, and the CSRF header matching it) by ``check_session``;
- refuses a declared ``Content-Length`` over the rule's cap at once: 413;
- counts the bytes as the route reads them and stops at the cap (a chunked body): 413.

Each refusal closes the connection (``Connection: close``), so the unread rest is not received.
The route's own dependency (``current_user``) checks the credentials again (a cheap indexed read).
Requests without a body (GET) pass untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

Authenticate = Callable[[str], object | None]  # token -> principal, or None; runs in a worker thread
CheckSession = Callable[[str, str | None], tuple[int, str] | None]  # (cookie, CSRF header) -> refusal or None


@dataclass(frozen=True)
class BodyRule:
    prefix: str
    max_bytes: int
    authenticate: bool = True


class _TooLarge(Exception):
    pass


class BodyLimits:
    def __init__(self, app: ASGIApp, *, rules: Sequence[BodyRule], authenticate: Authenticate,
                 session_cookie: str | None = None, check_session: CheckSession | None = None) -> None:
        self.app = app
        self.session_cookie = session_cookie
        self.check_session = check_session
        self.rules = sorted(rules, key=lambda r: len(r.prefix), reverse=True)  # the longest prefix wins
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        rule = next((r for r in self.rules if path.startswith(r.prefix)), None)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        has_body = "transfer-encoding" in headers or (declared.isdigit() and int(declared) > 0)
        if rule is None or not has_body:
            await self.app(scope, receive, send)
            return
        if rule.authenticate:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            cookie = self._cookie(headers.get("cookie", ""))
            if (scheme.lower() != "bearer" or not token.strip()) and cookie and self.check_session is not None:
                refusal = await run_in_threadpool(self.check_session, cookie, headers.get("x-csrf-token"))
                if refusal is not None:
                    await _answer(send, *refusal)
                    return
            elif scheme.lower() != "bearer" or not token.strip():
                await _answer(send, 401, "missing bearer token: send 'Authorization: Bearer <token from casework "
                                         "token create>'", bearer=True)
                return
            else:
                principal = await run_in_threadpool(self.authenticate, token.strip())
                if principal is None:
                    await _answer(send, 401, "invalid, revoked, expired or disabled token", bearer=True)
                    return
        if declared.isdigit() and int(declared) > rule.max_bytes:
            await _answer(send, 413, f"request body over {rule.max_bytes} bytes")
            return
        await self._capped(rule, scope, receive, send)

    def _cookie(self, header: str) -> str | None:
        if not self.session_cookie or not header:
            return None
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return None
        morsel = jar.get(self.session_cookie)
        return morsel.value if morsel is not None else None

    async def _capped(self, rule: BodyRule, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        tripped = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, tripped
            if tripped:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > rule.max_bytes:
                    tripped = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped:
                return  # the route's own answer to the broken-off body is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not tripped:
                raise
        if tripped and not started:
            log.warning("refused %s %s: body over %d bytes", scope.get("method"), scope.get("path"), rule.max_bytes)
            await _answer(send, 413, f"request body over {rule.max_bytes} bytes")


async def _answer(send: Callable[[Message], Awaitable[None]], status: int, detail: str, *,
                  bearer: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
