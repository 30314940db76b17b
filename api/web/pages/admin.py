"""``/admin/users``: the users, their roles and teams, and who can sign in to the workbench
(administrators only).  Adding, disabling and resetting passwords stay on the command line for
now (``casework user add``, ``casework user passwd``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.web.session_auth import Page, PageError, runtime_of
from api.web.templating import render
from casestore.signin.passwords import accounts

router = APIRouter(include_in_schema=False)


@router.get("/admin/users")
def users_page(request: Request, page: Page) -> Response:
    if page.user.role != "admin":
        raise PageError(403, "Only administrators see the user list.")
    with runtime_of(request).read_sessions() as session:
        rows = [{"name": u.name, "role": u.role, "teams": list(u.teams or []), "disabled": u.disabled,
                 "created_at": u.created_at, "has_password": has} for u, has in accounts(session)]
    return render(request, "admin_users.html", {"users": rows, "nav": "admin"}, page=page)
