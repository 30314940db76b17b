"""``/admin/users``: the users, their roles and teams, who can sign in to the workbench, and the
changes an administrator makes (administrators only): add a user, change role and teams,
disable or enable, set a new password.

Each change is the REST route's own function (``api.admin_routes``: the same service, the same
refusals, such as disabling yourself); what it refuses is shown on the page with its status.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from api import admin_routes
from api.web.notices import notice_for
from api.web.refusals import Refusal, attempt, body
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import render
from casestore.models import ROLES
from casestore.signin.passwords import accounts

router = APIRouter(include_in_schema=False)
Name = Annotated[str, Form(max_length=100)]


def require_admin(page: PageContext) -> None:
    if page.user.role != "admin":
        raise PageError(403, "Only administrators may see and change this.")


def admin_nav(current: str) -> dict[str, Any]:
    return {"nav": "admin", "admin_page": current}


def teams_of(text: str) -> list[str]:
    """``complaints, claims`` -> ["complaints", "claims"] (empty pieces dropped)."""
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def _users_page(request: Request, page: PageContext, *, notice: str = "", problem: Refusal | None = None,
                form: dict[str, str] | None = None) -> Response:
    with runtime_of(request).read_sessions() as session:
        rows = [{"name": u.name, "role": u.role, "teams": list(u.teams or []), "disabled": u.disabled,
                 "created_at": u.created_at, "has_password": has} for u, has in accounts(session)]
    return render(request, "admin_users.html", {
        "users": rows, "roles": ROLES, "notice": notice, "problem": problem.message if problem else "",
        "form": form or {}, **admin_nav("users"),
    }, page=page, status_code=problem.status if problem else 200)


def _after(request: Request, page: PageContext, got: object, done: str, form: dict[str, str] | None = None) -> Response:
    if isinstance(got, Refusal):
        return _users_page(request, page, problem=got, form=form)
    return Response(status_code=303, headers={"Location": f"/admin/users?done={done}"})


@router.get("/admin/users")
def users_page(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    require_admin(page)
    return _users_page(request, page, notice=notice_for(done))


@router.post("/admin/users")
def add_user(request: Request, page: Page, name: Name = "", role: Annotated[str, Form(max_length=20)] = "agent",
             teams: Annotated[str, Form(max_length=1000)] = "") -> Response:
    require_admin(page)
    got = attempt(lambda: admin_routes.add_user(request, body(admin_routes.NewUser, name=name, role=role,
                                                              teams=teams_of(teams)), page.user))
    return _after(request, page, got, "user_added", {"name": name, "role": role, "teams": teams})


@router.post("/admin/users/{name}/change")
def change_user(request: Request, name: str, page: Page, role: Annotated[str, Form(max_length=20)] = "",
                teams: Annotated[str, Form(max_length=1000)] = "") -> Response:
    require_admin(page)
    got = attempt(lambda: admin_routes.change_user(request, name, body(
        admin_routes.UserChange, role=role or None, teams=teams_of(teams)), page.user))
    return _after(request, page, got, "user_changed")


@router.post("/admin/users/{name}/disable")
def disable_user(request: Request, name: str, page: Page) -> Response:
    require_admin(page)
    return _after(request, page, attempt(lambda: admin_routes.disable_user(request, name, page.user)), "user_disabled")


@router.post("/admin/users/{name}/enable")
def enable_user(request: Request, name: str, page: Page) -> Response:
    require_admin(page)
    return _after(request, page, attempt(lambda: admin_routes.enable_user(request, name, page.user)), "user_enabled")


@router.post("/admin/users/{name}/password")
def set_password(request: Request, name: str, page: Page,
                 password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    require_admin(page)
    got = attempt(lambda: admin_routes.set_user_password(request, name, body(admin_routes.NewPassword,
                                                                             password=password), page.user))
    return _after(request, page, got, "password_set")
