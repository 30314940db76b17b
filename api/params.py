"""Path and body parameters shared by the REST routes, bounded by what the store can hold, so a
number too large for the database is a 422 with a message, never a driver error (a 500)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Path
from pydantic import Field

MAX_DB_INT = 2**31 - 1  # INTEGER columns are 32 bits on PostgreSQL

TaskId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="the task id")]
LeaseVersion = Annotated[int, Field(ge=0, le=MAX_DB_INT, description="the lease_version your claim handed out")]
Urgency = Annotated[int, Field(ge=0, le=1000, description="the new, higher urgency")]
DocumentId = Annotated[int, Field(ge=1, le=MAX_DB_INT, description="a document's id in the case folder")]


def date_bound(value: str | None, *, end: bool) -> datetime | None:
    """An ISO date or date-time given as a search bound (route, page and CLI alike); a bare date as
    an end bound includes that whole day; no zone means UTC.  ValueError when it is not ISO 8601."""
    if not value:
        return None
    if len(value) == 10:
        day = date.fromisoformat(value)
        return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
