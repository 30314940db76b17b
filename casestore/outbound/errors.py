"""Errors of the outbound domain (all ``CaseStoreError``s: one contract, see casestore.errors)."""

from __future__ import annotations

from casestore.errors import CaseStoreError, InvalidInput


class RecipientProblem(InvalidInput):
    """The message cannot go to this recipient until a person acts: no mobile number, no postal
    address, an address that bounced.  The message says what to fix."""


class TemplateProblem(InvalidInput):
    """A template is missing, does not parse, or uses a field that is not there."""


class RateLimited(CaseStoreError):
    """Too many messages to one recipient within a day (a guard against mail loops)."""

    http_status = 429
