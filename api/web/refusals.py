"""A page action calls the REST route's own function (the same service, the same checks); what the
route would have answered as a 4xx comes back here as a ``Refusal`` the page shows in place.

- ``CaseStoreError`` (the services' errors): its ``http_status`` and message.
- ``HTTPException`` (a route's own check): its status and detail.
- ``pydantic.ValidationError`` (the route's request model refused the form's values): 422 with
  the fields in words; a missing reason says what a reason is for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from casestore.errors import CaseStoreError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def _readable(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][-1]) if error["loc"] else "value"
        if field == "reason" and error["type"] in ("string_too_short", "missing"):
            parts.append("give a reason: it is kept in the audit trail with your name")
        else:
            parts.append(f"{field.replace('_', ' ')}: {error['msg'].lower()}")
    return "; ".join(parts) or "the form's values were refused"


def attempt(action: Callable[[], T]) -> T | Refusal:
    """Run ``action``; a refusal instead of the 4xx (or 503) the REST route would have sent."""
    try:
        return action()
    except CaseStoreError as exc:
        return Refusal(int(exc.http_status), str(exc))
    except HTTPException as exc:
        return Refusal(exc.status_code, str(exc.detail))
    except ValidationError as exc:
        return Refusal(422, _readable(exc))


def body(model: type[M], **values: object) -> M:
    """The route's request model from a form's values (``ValidationError`` when refused)."""
    return model.model_validate(values)
