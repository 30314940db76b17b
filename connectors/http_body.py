"""Reading a webhook's or form's request body with a cap, after its sender has been checked.

Webhook routes check what they can from the headers (a signature header present, a declared
``Content-Length`` within the limit) before they read a byte, then read at most ``limit`` bytes:
a chunked body that goes on past the limit is not read further. A refusal before the body is
read answers with ``Connection: close``, so the server does not go on receiving the rest.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from starlette.datastructures import FormData

CLOSE = {"Connection": "close"}


def refuse(status: int, detail: str) -> HTTPException:
    """An HTTP error that also closes the connection (the unread rest of the body is not taken)."""
    return HTTPException(status, detail, headers=CLOSE)


def declared_over(request: Request, limit: int) -> bool:
    """True if the request's ``Content-Length`` says it is over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body if it is at most ``limit`` bytes; None as soon as it is over (not read further)."""
    if declared_over(request, limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def form_of(request: Request, body: bytes, **limits: Any) -> FormData:
    """The form (urlencoded or multipart) in ``body``, already read from ``request``."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(request.scope, replay).form(**limits)
