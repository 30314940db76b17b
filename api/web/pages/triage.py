"""``/triage``: the oldest waiting item with its document beside the ranked candidate cases and
the matcher's evidence; attach (a), new case (n) or noise (x), with a reason.  After each
resolution the next item replaces the form (htmx), so a person works the queue with the keyboard.

The queue and the resolution go through the REST routes' own functions
(``api.triage_routes.queue`` and ``resolve``): the same services, the same access checks, the
same search re-index after a resolution.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from starlette.responses import Response

from api import triage_routes
from api.web.session_auth import Page, PageContext, runtime_of
from api.web.templating import render
from api.web.visibility import may_see
from casestore import case_view, cases, items
from casestore.errors import CaseStoreError, NotFound

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
ACTIONS = {"attach": "Attach to the case", "new_case": "Open a new case", "noise": "Noise"}


def candidate_evidence(decision: dict[str, Any], ref: str) -> list[str]:
    """What the matcher saw for one candidate case, in words."""
    evidence = decision.get("evidence") or {}
    lines = []
    for hit in evidence.get("refs_known") or []:
        if hit.get("ref") == ref:
            lines.append(f"reference {hit.get('raw')!s} found ({hit.get('via')}, confidence {hit.get('confidence')})")
    agreement = (evidence.get("agreement") or {}).get(ref)
    if agreement is not None:
        lines.append(f"agreement with the case's customer: {agreement}")
    for case in evidence.get("open_cases") or []:
        if case.get("ref") == ref:
            lines.append(f"an open {case.get('type')} case of the identified customer"
                         + ("" if case.get("fits") else " (type does not fit)"))
    return lines


def evidence_summary(decision: dict[str, Any]) -> list[tuple[str, str]]:
    evidence = decision.get("evidence") or {}
    rows: list[tuple[str, str]] = []
    if evidence.get("rule"):
        rows.append(("rule", str(evidence["rule"])))
    sender = evidence.get("sender") or {}
    who = ", ".join(str(v) for v in sender.values() if v)
    if who:
        rows.append(("sender", who))
    for kind, found in (evidence.get("entities") or {}).items():
        values = ", ".join(str(e.get("value")) for e in found[:5])
        rows.append((kind.replace("_", " "), values))
    customers = evidence.get("customers") or []
    if customers:
        rows.append(("customers", "; ".join(f"{c.get('customer_id')} (score {c.get('score')}: "
                                            f"{', '.join(c.get('signals') or [])})" for c in customers[:5])))
    return rows


def _next_item(request: Request, page: PageContext, position: int) -> dict[str, Any]:
    queue = triage_routes.queue(request, page.user, limit=1, offset=position)
    if not queue:
        return {"entry": None, "position": position}
    entry = queue[0]
    with runtime_of(request).read_sessions() as session:
        try:
            view = items.item_view(session, item_id=entry["item_id"])
        except NotFound:  # resolved meanwhile
            return {"entry": None, "position": position}
        candidates = []
        for ref in entry.get("candidates") or []:
            case = cases.find_case(session, ref=str(ref))
            if case is not None and may_see(page.user, case):
                candidates.append({"case": case_view.summary(case),
                                   "customer": case.customer.name if case.customer else "",
                                   "evidence": candidate_evidence(view.get("decision") or {}, case.ref)})
    documents = view.get("documents") or []
    return {"entry": entry, "item": view, "candidates": candidates, "position": position,
            "evidence": evidence_summary(view.get("decision") or {}),
            "document": documents[0] if documents else None, "documents": documents,
            "customer_id": (view.get("decision") or {}).get("customer_id") or ""}


@router.get("/triage")
def triage_page(request: Request, page: Page, position: Annotated[int, Query(ge=0, le=100_000)] = 0) -> Response:
    with runtime_of(request).read_sessions() as session:
        from casestore.intake_stats import triage_backlog

        backlog = triage_backlog(session)
    context = {**_next_item(request, page, position), "backlog": backlog, "actions": ACTIONS, "nav": "triage"}
    return render(request, "triage.html", context, page=page)


@router.post("/triage/{item_id}")
def resolve(
    request: Request,
    item_id: str,
    page: Page,
    action: Annotated[str, Form(max_length=20)] = "",
    case_ref: Annotated[str, Form(max_length=64)] = "",
    case_ref_other: Annotated[str, Form(max_length=64)] = "",
    customer_id: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    position: Annotated[int, Form(ge=0, le=100_000)] = 0,
) -> Response:
    message, error = "", ""
    if action not in ACTIONS:
        error = "Choose what to do: a (attach), n (new case) or x (noise)."
    else:
        body = triage_routes.Resolve(action=action,
                                     case_ref=(case_ref_other.strip() or case_ref.strip() or None) if action == "attach"
                                     else None,
                                     customer_id=customer_id.strip() or None if action == "new_case" else None,
                                     reason=reason)
        try:
            done = triage_routes.resolve(request, item_id, body, page.user)
            what = {"attached": f"attached to {done['case_ref']}", "new_case": f"new case {done['case_ref']}",
                    "noise": "marked as noise"}.get(done["outcome"], done["outcome"])
            message = f"Item {item_id[:8]} {what}."
        except HTTPException as exc:
            error = str(exc.detail)
        except CaseStoreError as exc:
            error = str(exc)
    if not request.headers.get("HX-Request"):
        return Response(status_code=303, headers={"Location": f"/triage?position={position}"})
    context = _next_item(request, page, position)
    if error and context.get("entry") and context["entry"]["item_id"] != item_id:
        message, error = "", f"Item {item_id[:8]}: {error}"
    return render(request, "_triage_item.html", {**context, "actions": ACTIONS, "message": message,
                                                 "error": error}, page=page)
