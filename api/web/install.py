"""Wiring the workbench into the FastAPI app (called once from ``api.app.create_app``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from api.web.assets import mount_assets
from api.web.counts_cache import CountsCache
from api.web.pages import (
    admin,
    admin_config,
    admin_tokens,
    case_work,
    cases,
    customers,
    documents,
    home,
    mailroom,
    notifications,
    ops,
    reply,
    search,
    signin,
    supervisor,
    triage,
    work,
)
from api.web.pages.oidc import install_oidc
from api.web.session_auth import PageError, SignInRequired, current_session, principal_of, sign_in_redirect
from api.web.templating import render


def install_workbench(app: FastAPI) -> None:
    settings = app.state.runtime.settings
    mount_assets(app, settings.web.assets_dir)
    app.state.queue_counts = CountsCache(settings.web.queue_counts_max_age_s)
    app.state.notice_counts = CountsCache(settings.web.queue_counts_max_age_s)  # the header's unread count
    for module in (signin, home, work, cases, case_work, reply, mailroom, documents, search, triage, ops, supervisor,
                   notifications, customers, admin, admin_tokens, admin_config):
        app.include_router(module.router)
    install_oidc(app, settings.web.oidc)  # /login/oidc when a provider is configured

    async def to_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(request, exc.next_url)

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        if request.headers.get("HX-Request"):  # a fragment in place of the element that asked
            return render(request, "_refusal.html", {"message": exc.message}, status_code=exc.status)
        active = current_session(request)
        user = principal_of(active) if active is not None else None
        return render(request, "error.html", {"status": exc.status, "message": exc.message, "user": user,
                                              "csrf_token": active.csrf_token if active else ""},
                      status_code=exc.status)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(PageError, page_error)
