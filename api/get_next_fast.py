"""``POST /api/v1/work/next`` answered in front of the web framework (pure ASGI), for bearer tokens.

get-next is the hottest route.  Profiling `casework serve` under the open-loop benchmark (150
get-next/s, SQLite, BENCHMARKS.md issue 10) showed most of the server's CPU per call outside the
claim: FastAPI's and Starlette's middleware chain, routing, dependency solving (``HTTPBearer``,
``BackgroundTasks``, ``Request``) and the response's trip back through every middleware's ``send``
wrapper.  This app sits outermost and answers a get-next that carries a bearer token and no body
itself: the token check, the role check, the claim and the JSON in one threadpool trip, the same
service (``api.queue_routes.next_work``) and the same response as the route.

The token check and the claim run on the database driver's cursor (``casestore.db.driver_cursor``,
``DriverQuery``: the route's queries and rules without a ``Session`` per call; on PostgreSQL in
autocommit, one round trip each), in a worker thread on PostgreSQL.
On SQLite they run on the event loop itself, not in a worker thread:
SQLite serialises writers anyway, the statements are short, and a threadpool trip (anyio's
bookkeeping, two thread hand-overs and a wait to win the GIL back) cost more than the claim.  The
loop never waits for the database: the claim is tried only when this process's writer turn is free
and SQLite's writer lock can be had at once (``sqlite_immediate(wait=False)``), else it goes to the
threadpool and waits there as before.  Its commits, on the loop or in the threadpool, skip
SQLite's automatic WAL checkpoint (a copy into the database file and two syncs, which the claim
would wait for), which runs in worker threads every ``CHECKPOINT_EVERY`` claims instead
(``casestore.db.sqlite_checkpoint``, which also lets the WAL start again from its beginning: its
short last step holds the writer turn, and claims arriving meanwhile wait for it on the loop).
Durability is unchanged: WAL with ``synchronous=NORMAL``, as every connection.

Everything else goes to the framework unchanged, and so does a get-next it does not serve: no or
a bad token (the framework's 401 / 403, worded as everywhere else), a workbench session cookie, a
body.  Errors of the claim itself (the cap, a disabled user, the store busy) are answered here with
the app's one error shape (``domain_error_response``); nothing is ever tried twice.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.wiring import Runtime
from casestore import users
from casestore.access import principal_of
from casestore.db import WriterBusy, driver_cursor, sqlite_checkpoint, sqlite_wal_second_pass, wal_wants_second_pass
from casestore.errors import CaseStoreError
from casestore.token_use import LastUseBuffer
from casestore.work.actor import Actor

log = logging.getLogger(__name__)

PATH = "/api/v1/work/next"
CHECKPOINT_EVERY = 200  # claims on the loop (their commits skip SQLite's automatic checkpoint) per checkpoint
WRITER_BUSY = WriterBusy("the writer lock is taken")
WORKER_ROLES = ("agent", "supervisor", "admin")


def domain_error_response(exc: Exception) -> JSONResponse:
    """The app's one rendering of a domain error: its ``http_status`` and ``{"error", "detail"}``."""
    code = int(getattr(exc, "http_status", 500))
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=code)


class GetNextFast:
    """The outermost ASGI app: get-next with a bearer token here, everything else to ``app``.
    ``state`` is the FastAPI app's (its ``runtime``, and its ``last_use`` read per call, as tests
    replace it)."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state
        self._commits = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._second_pass: asyncio.Future[tuple[int, int, int]] | None = None

    async def _checkpoint(self, engine: Engine) -> None:
        """The WAL checkpoint of the claims' commits, in worker threads: the passive passes, then (a
        long WAL) the short last step with the writer turn held, during which claims wait on the loop."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, partial(sqlite_checkpoint, engine, second_pass=False))
            if wal_wants_second_pass(result):
                self._second_pass = loop.run_in_executor(None, sqlite_wal_second_pass, engine)
                await self._second_pass
        except Exception as error:
            log.warning("WAL checkpoint after get-next claims failed (SQLite checkpoints at a later commit): %s", error)
        finally:
            self._second_pass = None
            self._checkpointing = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        token = None
        for key, value in scope["headers"]:  # ASGI header names are lower-case
            if key == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    token = credentials.strip()
            elif key == b"transfer-encoding" or (key == b"content-length" and value.strip() not in (b"", b"0")):
                await self.app(scope, receive, send)  # a body: the body limits and the route's own checks
                return
        if token is None:
            await self.app(scope, receive, send)
            return
        runtime: Runtime = self.state.runtime
        buffer: LastUseBuffer = self.state.last_use
        served: bytes | JSONResponse | WriterBusy | None = WRITER_BUSY
        sqlite = runtime.engine.dialect.name == "sqlite"
        if sqlite:
            if self._second_pass is not None:  # our checkpoint holds the writer turn: wait on the loop
                await asyncio.wait([self._second_pass])
            served = _serve(runtime, buffer, token, wait=False)  # on the loop, unless it would wait
        if served is WRITER_BUSY:
            served = await run_in_threadpool(_serve, runtime, buffer, token)
        if sqlite and isinstance(served, bytes):  # claimed (or found nothing): a commit without a checkpoint
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0 and self._checkpointing is None:
                self._checkpointing = asyncio.ensure_future(self._checkpoint(runtime.engine))
        if served is None:  # not a live token of a worker: the framework says why
            await self.app(scope, receive, send)
            return
        assert not isinstance(served, WriterBusy)
        if isinstance(served, JSONResponse):
            await served(scope, receive, send)
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(served)).encode()),
                                    (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": served})
        if buffer.due():  # as the route's background task: after the response, in its own transaction
            await run_in_threadpool(buffer.flush, runtime.engine)


def _serve(runtime: Runtime, buffer: LastUseBuffer, token: str, *,
           wait: bool = True) -> bytes | JSONResponse | WriterBusy | None:
    """The JSON of the claim, an error response, or None (not ours to answer).  In a worker thread;
    or (SQLite, ``wait=False``) on the event loop, giving ``WRITER_BUSY`` back, having done nothing,
    when the claim would have to wait for SQLite's writer lock."""
    from api.queue_routes import next_work  # the route's module imports this one's error shape

    engine = runtime.engine
    # the same query and rule as api.auth's check, on the driver (PostgreSQL: in autocommit, one
    # round trip): a Session cost more than the claim
    with driver_cursor(engine) as cursor:
        check = users.check_token_on(cursor, engine.dialect, token=token)
    if check.user is None or check.token_id is None:
        return None
    user = principal_of(check.user)
    if user.role not in WORKER_ROLES:
        return None
    buffer.note(check.token_id)
    actor = Actor(name=user.name, role=user.role, teams=tuple(user.teams), disabled=user.disabled)
    try:
        return next_work(runtime, actor, wait=wait, checkpoint=False).model_dump_json().encode()
    except WriterBusy:
        return WRITER_BUSY
    except CaseStoreError as exc:  # raised before anything was committed: the claim rolled back
        return domain_error_response(exc)
