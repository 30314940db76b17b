"""Signing in with an identity provider's word (OpenID Connect): which casework user a verified
claim names.

The provider proves who someone is; casework still decides what they may do.  Only an existing,
enabled user with a workbench role matches: a provider account with no casework user, or with a
disabled or integration one, is refused with a reason an administrator can act on.  Names match
exactly after trimming, and otherwise case-insensitively when exactly one user has that name
(providers often send ``Alice`` for ``alice``).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.models import User
from casestore.signin.passwords import SIGN_IN_ROLES


class FederatedRefusal(Exception):
    """The provider's user may not sign in to casework; ``str()`` says why, for the sign-in page."""


def user_for_claim(session: Session, *, claim: str, value: object) -> User:
    """The casework user that the verified ``claim`` (its ``value``) names; FederatedRefusal otherwise.
    Reads only."""
    if not isinstance(value, str) or not value.strip():
        raise FederatedRefusal(f"the identity provider did not send the claim {claim!r} that names the casework "
                               "user; ask an administrator to check CASEWORK_WEB__OIDC__USER_CLAIM")
    name = value.strip()
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        matches = session.execute(select(User).where(func.lower(User.name) == name.lower())).scalars().all()
        user = matches[0] if len(matches) == 1 else None
    if user is None:
        raise FederatedRefusal(f"there is no casework user {name!r}; an administrator adds one with "
                               f"`casework user add {name} --role agent --team TEAM`")
    if user.disabled:
        raise FederatedRefusal(f"the casework user {user.name!r} is disabled")
    if user.role not in SIGN_IN_ROLES:
        raise FederatedRefusal(f"the casework user {user.name!r} is an {user.role} account and does not use the "
                               "workbench")
    return user
