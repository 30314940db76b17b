"""Path and body parameters shared by the REST routes, bounded by what the store can hold, so a
number too large for the database is a 422 with a message, never a driver error (a 500)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

MAX_DB_INT = 2**31 - 1  # INTEGER columns are 32 bits on PostgreSQL

TaskId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="the task id")]
LeaseVersion = Annotated[int, Field(ge=0, le=MAX_DB_INT, description="the lease_version your claim handed out")]
Urgency = Annotated[int, Field(ge=0, le=1000, description="the new, higher urgency")]
DocumentId = Annotated[int, Field(ge=1, le=MAX_DB_INT, description="a document's id in the case folder")]
