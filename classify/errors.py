"""The root error of the classify package (same attribute contract as the other packages' roots)."""

from __future__ import annotations


class ClassifyError(Exception):
    retryable: bool = False
    http_status: int = 422
    exit_code: int = 1


class BadPattern(ClassifyError):
    """A configured pattern (reference regex, rule) does not compile; fix the setting."""
