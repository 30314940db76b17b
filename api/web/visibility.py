"""The access rule as the pages apply it: the same function the REST API uses
(``casestore.access``, as in ``api.app``), in one place for every page.

A case the viewer may not see answers exactly like a case that does not exist (404), and so does
every document filed in it, by any URL.  Items in no case (triage, noise) are the shared intake
queue, visible as ``GET /api/v1/items/{id}`` decides (``access.item_visible``: a triage item
suggesting another team's case or customer is hidden too).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.auth import Principal
from api.web.session_auth import PageError
from casestore import access, cases
from casestore.models import Case


def may_see(user: Principal, case: Case | None) -> bool:
    """Whether the viewer may see this case (None: no case, the shared intake queue)."""
    if case is None:
        return not user.disabled
    return access.can_see_case(user, case)


def may_see_item(session: Session, user: Principal, item_id: str, case: Case | None) -> bool:
    """Whether the viewer may see this item (and so its documents): as ``GET /api/v1/items/{id}``
    decides for a person.  Every page that shows an item or a document asks here."""
    if case is not None:
        return may_see(user, case)
    return access.item_visible(session, user, item_id=item_id)


def visible_case(session: Session, user: Principal, ref: str) -> Case:
    """The case, or PageError 404 when it does not exist or the viewer may not see it."""
    case = cases.find_case(session, ref=ref)
    if case is None or not may_see(user, case):
        raise PageError(404, f"There is no case {ref} (or it is not visible to your teams).")
    return case
