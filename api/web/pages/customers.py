"""``/customers/reviews``: prospects (people who wrote before the CRM knew them) that a customer
import found may be a CRM customer, waiting for a person (``casestore.prospects``).

Supervisors and administrators merge a prospect into the customer (its cases move, with a reason
in the audit trail of each) or dismiss the match (a re-import keeps it dismissed), through the
same services as ``casework customer merge|dismiss`` (``api.customer_ops``).  A review is listed
only when the viewer may see every case of the prospect.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from api import customer_ops
from api.web.notices import notice_for
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import render
from api.web.visibility import may_see
from casestore.errors import CaseStoreError
from casestore.models import Case
from casestore.prospects import Review, open_reviews

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
DECIDERS = ("supervisor", "admin")


def _visible_reviews(request: Request, page: PageContext, *, prospect: str | None = None,
                     customer: str | None = None) -> list[Review]:
    with runtime_of(request).read_sessions() as session:
        found = open_reviews(session, prospect_id=prospect, customer_id=customer)
        refs = {ref for r in found for ref in r.cases}
        cases = {c.ref: c for c in session.scalars(select(Case).where(Case.ref.in_(refs)))} if refs else {}
        return [r for r in found if all(may_see(page.user, cases.get(ref)) for ref in r.cases)]


def _page(request: Request, page: PageContext, *, notice: str = "", problem: str = "",
          status_code: int = 200) -> Response:
    return render(request, "customer_reviews.html", {
        "reviews": _visible_reviews(request, page), "nav": "supervisor", "notice": notice, "problem": problem,
    }, page=page, status_code=status_code)


def _decider(page: PageContext) -> None:
    if page.user.role not in DECIDERS:
        raise PageError(403, "Only supervisors and administrators decide whether a prospect is a customer.")


@router.get("/customers/reviews")
def reviews_page(request: Request, page: Page, done: Annotated[str, Query(max_length=40)] = "") -> Response:
    _decider(page)
    return _page(request, page, notice=notice_for(done))


Who = Annotated[str, Form(min_length=1, max_length=100)]
Reason = Annotated[str, Form(max_length=2000)]


def _listed(request: Request, page: PageContext, prospect: str, customer: str) -> bool:
    return bool(_visible_reviews(request, page, prospect=prospect, customer=customer))


@router.post("/customers/reviews/merge")
def merge(request: Request, page: Page, prospect: Who, customer: Who, reason: Reason = "") -> Response:
    _decider(page)
    if not reason.strip():
        return _page(request, page, status_code=422,
                     problem="Give a reason for merging: it goes into the audit trail of every case that moves.")
    if not _listed(request, page, prospect, customer):
        return _page(request, page, status_code=409, problem=(
            f"There is no open review of {prospect} and {customer} that you may decide: it was decided already "
            "(reload the page), or a case of the prospect is not visible to your teams."))
    try:
        done = customer_ops.merge(runtime_of(request), prospect=prospect, customer=customer, actor=page.user.name,
                                  reason=reason.strip())
    except CaseStoreError as exc:
        return _page(request, page, status_code=int(getattr(exc, "http_status", 409)), problem=str(exc))
    log.info("%s merged prospect %s into %s (%d cases)", page.user.name, prospect, customer, len(done.moved))
    return Response(status_code=303, headers={"Location": "/customers/reviews?done=prospect_merged"})


@router.post("/customers/reviews/dismiss")
def dismiss(request: Request, page: Page, prospect: Who, customer: Who) -> Response:
    _decider(page)
    if not _listed(request, page, prospect, customer):
        return _page(request, page, status_code=409, problem=(
            f"There is no open review of {prospect} and {customer} that you may decide: it was decided already "
            "(reload the page), or a case of the prospect is not visible to your teams."))
    try:
        customer_ops.dismiss(runtime_of(request), prospect=prospect, customer=customer, actor=page.user.name)
    except CaseStoreError as exc:
        return _page(request, page, status_code=int(getattr(exc, "http_status", 409)), problem=str(exc))
    log.info("%s dismissed prospect %s as customer %s", page.user.name, prospect, customer)
    return Response(status_code=303, headers={"Location": "/customers/reviews?done=prospect_dismissed"})
