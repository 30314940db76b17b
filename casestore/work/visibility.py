"""Who may see which case, as a SQL condition on ``cases``: the rule of ``casestore.users.can_see_case``
(admins and supervisors see every case; others the cases of their teams, and unrestricted cases
of no team; a disabled user nothing), for queries that must skip what the actor may not see
inside the database, such as get-next's indexed LIMIT 1 per queue.

A test checks it against ``can_see_case`` case by case, so the rule stays one.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement

from casestore.access import SEES_ALL_CASES, case_visible_clause
from casestore.work.actor import Actor


def sees_all_cases(actor: Actor) -> bool:
    return not actor.disabled and actor.role in SEES_ALL_CASES


def visible_case_clause(actor: Actor) -> ColumnElement[bool] | None:
    """A condition on ``Case`` that holds for the cases ``actor`` may see; None: every case."""
    if sees_all_cases(actor):
        return None
    return case_visible_clause(actor)  # the access policy's own rule (disabled: nothing)
