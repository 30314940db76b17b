"""Who may do what to a case's work: the case type's role x action matrix, and who may see a case.

``system`` (the file stage, the clock loop) may do everything; an ``integration`` account may
do nothing here; a disabled user nothing at all.  Seeing a case is the store's one rule
(``casestore.access.can_see_case``), called only from ``can_see`` below; a case the actor may
not see is answered exactly as if it did not exist (404).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from casestore import access
from casestore.cases import find_case
from casestore.errors import Forbidden, NotFound
from casestore.models import Case
from casestore.work.actor import Actor
from casestore.work.definitions import CaseType

SYSTEM_ROLE = "system"
NO_WORK_ROLES = frozenset({"integration"})


def allowed(actor: Actor, case_type: CaseType, action: str) -> bool:
    """Whether the actor's role may do ``action`` on cases of this type."""
    if actor.disabled:
        return False
    if actor.role == SYSTEM_ROLE:
        return True
    if actor.role in NO_WORK_ROLES:
        return False
    return case_type.allows(actor.role, action)


def require(actor: Actor, case_type: CaseType, action: str) -> None:
    """Forbidden (403) unless the actor's role may do ``action`` on cases of this type."""
    if allowed(actor, case_type, action):
        return
    if actor.disabled:
        raise Forbidden(f"user {actor.name!r} is disabled; an administrator must enable it first")
    roles = sorted(role for role, actions in case_type.roles.items() if action in actions)
    who = " or ".join(f"{'an' if role[:1] in 'aeiou' else 'a'} {role}" for role in roles) if roles \
        else "nobody (the case type allows it to no role)"
    raise Forbidden(f"role {actor.role} may not {action.replace('_', ' ')} on {case_type.name} cases; "
                    f"ask {who} to do it")


def can_see(actor: Actor, case: Case) -> bool:
    """The one place the work domain asks whether an actor may see a case."""
    if actor.role == SYSTEM_ROLE:
        return not actor.disabled
    return access.can_see_case(actor, case)


def not_found(ref: str) -> NotFound:
    """The answer for a case that does not exist or that the actor may not see (the same, on purpose)."""
    return NotFound(f"no case {ref} (or not visible to your teams)")


def visible_case(session: Session, *, ref: str, actor: Actor) -> Case:
    """The case ``ref`` if it exists and the actor may see it; NotFound (404) otherwise."""
    case = find_case(session, ref=ref)
    if case is None or not can_see(actor, case):
        raise not_found(ref.strip())
    return case


def check_visible(actor: Actor, case: Case, *, what: str) -> None:
    """NotFound for ``what`` (e.g. ``task 12``) when it belongs to a case the actor may not see."""
    if not can_see(actor, case):
        raise NotFound(f"no {what} (or not visible to your teams)")
