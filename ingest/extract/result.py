"""The value returned by ``extract``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.messages import EmailHeaders, Part


@dataclass(frozen=True)
class Extraction:
    """What was read from one item: its parts, its email headers if it is an email, and warnings."""

    parts: list[Part]
    email: EmailHeaders | None = None
    warnings: list[str] = field(default_factory=list)
