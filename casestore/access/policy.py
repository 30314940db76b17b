"""THE rule of who may see and do what: one policy for routes, the CLI, search and the pipeline.

A *principal* is whoever acts: an API user (role, teams, disabled), or the operator at the
command line (``OPERATOR``, who sees everything).

1. **Cases: reading and writing are one rule.**  A disabled principal may do nothing.  Admins
   and supervisors (``SEES_ALL_CASES``) see every case.  Everyone else (agents and integration
   accounts) sees the cases of their teams, and cases of no team that are not restricted.
   Whoever may see a case may file into it (an upload naming it, a triage attach, a note);
   nobody may file into a case they cannot see.  Integration accounts follow the same rule:
   an integration that files for several teams must be given those teams.
2. **Teams.**  A new case may be put into team T (an upload's ``team`` metadata) only by a
   principal who sees every case or belongs to T.
3. **Customers.**  A principal may open a case for a customer (and so read its record in the
   new case's folder) when they see every case, when the customer has no case yet, or when at
   least one of the customer's cases is visible to them.  A customer whose cases are all in
   teams the principal cannot see (or restricted) belongs to those teams: the principal may not
   open a case for it, and is told "no such customer", as if it did not exist.
4. **Items.**  An item filed in a case is visible when its case is.  An item in triage is
   visible unless it points at something the principal may not see: one of its candidate
   cases is not visible to them, the customer the matcher suggested is one they may not open a
   case for (rule 3), or its metadata names a team they are not in.  Noise and failed items
   (in no case) are the shared intake and visible to all.  Integration accounts see only the
   items they uploaded themselves (source ``api:NAME``), never one filed in a case they
   cannot see.

Everything that is not visible answers as if it did not exist (404 over HTTP), so a refusal
never confirms that another team's case, item or customer exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from casestore.errors import NotFound
from casestore.models import Case, Customer, Item, ItemFailure, User

SEES_ALL_CASES = frozenset({"admin", "supervisor"})
API_SOURCE_PREFIX = "api:"  # an upload's ``source`` is ``api:<user name>`` (set by the upload route)
IN_CHUNK = 500


class Subject(Protocol):
    """Whatever the policy judges (``Principal`` is the one implementation the project uses)."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def teams(self) -> Sequence[str]: ...

    @property
    def disabled(self) -> bool: ...


@dataclass(frozen=True)
class Principal:
    """Who acts: an authenticated user, or the operator at the command line."""

    name: str
    role: str
    teams: tuple[str, ...] = ()
    disabled: bool = False


OPERATOR = Principal(name="operator", role="admin")  # the CLI runs as whoever administers the machine


def principal_of(user: User) -> Principal:
    return Principal(name=user.name, role=user.role, teams=tuple(user.teams or ()), disabled=bool(user.disabled))


def find_principal(session: Session, *, name: str) -> Principal | None:
    """The principal of the user ``name``; None for an unknown user (who may do nothing)."""
    user = session.scalar(select(User).where(User.name == name))
    return principal_of(user) if user is not None else None


def sees_all(who: Subject) -> bool:
    return not who.disabled and who.role in SEES_ALL_CASES


def case_visible(who: Subject, *, team: str | None, restricted: bool) -> bool:
    """Rule 1 on a case's team and restriction."""
    if who.disabled:
        return False
    if who.role in SEES_ALL_CASES:
        return True
    if team is None:
        return not restricted
    return team in who.teams


def case_visible_clause(who: Subject) -> ColumnElement[bool]:
    """Rule 1 as SQL on ``cases``, for lists that filter in the database (the same rule as
    ``case_visible``; a test holds the two together)."""
    if who.disabled:
        return false()
    if who.role in SEES_ALL_CASES:
        return true()
    return or_(Case.team.in_(list(who.teams)), and_(Case.team.is_(None), Case.restricted.is_(False)))


def can_see_case(who: Subject, case: Case) -> bool:
    return case_visible(who, team=case.team, restricted=bool(case.restricted))


def may_file_into(who: Subject, case: Case) -> bool:
    """Rule 1: writing into a case is allowed exactly when reading it is."""
    return can_see_case(who, case)


def may_assign_team(who: Subject, team: str | None) -> bool:
    """Rule 2: no team is always allowed; a team only for its members and those who see all."""
    if who.disabled:
        return False
    return team is None or who.role in SEES_ALL_CASES or team in who.teams


def visible_case(session: Session, who: Subject, *, ref: str) -> Case:
    """The case ``ref`` if ``who`` may see it; NotFound alike for a missing and a hidden case."""
    case = session.scalar(select(Case).where(Case.ref == ref.strip()))
    if case is None or not can_see_case(who, case):
        raise NotFound(f"no case {ref.strip()!r} (or not visible to your teams); check the reference")
    return case


def customers_closed_to(session: Session, who: Subject, customer_ids: Iterable[str]) -> set[str]:
    """Of these CRM ids, the customers ``who`` may not open a case for (rule 3).  Unknown ids are
    not judged here (opening a case for them fails as unknown anyway)."""
    wanted = sorted({c for c in customer_ids if c})
    if not wanted or sees_all(who):
        return set()
    if who.disabled:
        return set(wanted)
    seen: dict[str, bool] = {}  # customer -> has a visible case
    for start in range(0, len(wanted), IN_CHUNK):
        rows = session.execute(
            select(Customer.customer_id, Case.team, Case.restricted)
            .outerjoin(Case, Case.customer_id == Customer.id)
            .where(Customer.customer_id.in_(wanted[start:start + IN_CHUNK]))
        )
        for customer_id, team, restricted in rows:
            has_case = restricted is not None  # outer join: no case at all gives NULLs
            visible = not has_case or case_visible(who, team=team, restricted=bool(restricted))
            seen[customer_id] = seen.get(customer_id, False) or visible
    return {c for c, ok in seen.items() if not ok}


def may_open_case_for(session: Session, who: Subject, *, customer_id: str | None) -> bool:
    """Rule 3 for one customer (None: a person not yet known, always allowed unless disabled)."""
    if who.disabled:
        return False
    return not customer_id or customer_id not in customers_closed_to(session, who, [customer_id])


def check_may_open_case_for(session: Session, who: Subject, *, customer_id: str | None) -> None:
    """NotFound, alike for an unknown customer and for one ``who`` may not open a case for."""
    known = not customer_id or session.scalar(
        select(Customer.id).where(Customer.customer_id == customer_id.strip())) is not None
    if not known or not may_open_case_for(session, who, customer_id=customer_id and customer_id.strip()):
        raise NotFound(f"no customer {customer_id!r} (or not one you may open a case for); check the CRM id, "
                       "or leave it empty for a person not yet known")


def suggested_customer(decision: Mapping[str, Any]) -> str | None:
    """The customer the matcher suggested for an item (stored in its decision).  Items filed
    before the decision kept ``customer_id`` fall back to the best-scored customer of the evidence."""
    if "customer_id" in decision:
        value = decision.get("customer_id")
        return str(value) if value else None
    evidence = decision.get("evidence")
    ranked = evidence.get("customers") if isinstance(evidence, Mapping) else None
    if isinstance(ranked, list) and ranked and isinstance(ranked[0], Mapping):
        value = ranked[0].get("customer_id")
        return str(value) if value else None
    return None


def _candidates(decision: Mapping[str, Any]) -> list[str]:
    values = decision.get("candidates") or []
    return [str(v) for v in values] if isinstance(values, list) else []


def triage_hidden(session: Session, who: Subject, items: Sequence[Item]) -> set[str]:
    """Of these triage items, the ids hidden from ``who`` (rule 4); one query per kind of lookup."""
    if not items or sees_all(who):
        return set()
    if who.disabled:
        return {i.item_id for i in items}
    refs = sorted({r for i in items for r in _candidates(i.decision or {})})
    hidden_refs: set[str] = set()  # candidates that exist and are not visible (a missing one hides nothing)
    for start in range(0, len(refs), IN_CHUNK):
        rows = session.execute(select(Case.ref, Case.team, Case.restricted)
                               .where(Case.ref.in_(refs[start:start + IN_CHUNK])))
        hidden_refs |= {ref for ref, team, restricted in rows
                        if not case_visible(who, team=team, restricted=bool(restricted))}
    suggested = {i.item_id: suggested_customer(i.decision or {}) for i in items}
    closed = customers_closed_to(session, who, [c for c in suggested.values() if c])
    hidden: set[str] = set()
    for item in items:
        team = (item.meta or {}).get("team")
        if (any(r in hidden_refs for r in _candidates(item.decision or {}))
                or suggested[item.item_id] in closed
                or (team and not may_assign_team(who, str(team)))):
            hidden.add(item.item_id)
    return hidden


def uploaded_by(source: str | None) -> str | None:
    """The user who uploaded an item through the API, from its ``source`` (``api:NAME``)."""
    if source and source.startswith(API_SOURCE_PREFIX):
        return source[len(API_SOURCE_PREFIX):] or None
    return None


def items_hidden_from(session: Session, who: Subject, item_ids: Sequence[str]) -> set[str]:
    """Of these items, those ``who`` may not see now (rule 4), judged on the store as it is, not
    on what a search index last recorded.  Ids the store does not hold are not judged here."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return set()
    if who.disabled:
        return set(ids)
    hidden: set[str] = set()
    triaged: list[Item] = []
    for start in range(0, len(ids), IN_CHUNK):
        rows = session.execute(
            select(Item, Case.team, Case.restricted, Case.id)
            .outerjoin(Case, Item.case_id == Case.id).where(Item.item_id.in_(ids[start:start + IN_CHUNK]))
        ).all()
        for item, team, restricted, case_id in rows:
            if who.role == "integration" and uploaded_by(item.source) != who.name:
                hidden.add(item.item_id)
            elif case_id is not None:
                if not case_visible(who, team=team, restricted=bool(restricted)):
                    hidden.add(item.item_id)
            elif item.outcome == "triage" and who.role != "integration":
                triaged.append(item)
    return hidden | triage_hidden(session, who, triaged)


def item_visible(session: Session, who: Subject, *, item_id: str) -> bool:
    """Rule 4 for one item, filed or only failed (a failed upload: its uploader, or anyone for
    the shared intake)."""
    if who.disabled:
        return False
    if session.scalar(select(Item.item_id).where(Item.item_id == item_id)) is not None:
        return not items_hidden_from(session, who, [item_id])
    if who.role != "integration":
        return True
    sources = session.scalars(select(ItemFailure.source).where(ItemFailure.item_id == item_id))
    return any(uploaded_by(s) == who.name for s in sources)


def filing_refusal(session: Session, who: Subject | None, *, outcome: str, case_ref: str | None,
                   customer_id: str | None, team: str | None) -> str | None:
    """Why ``who`` (an uploader; None: unknown user) may not have an item filed this way, or None
    if they may.  For the file stage, which sends a refused filing to triage."""
    if who is None or who.disabled:
        return "its uploader is unknown or disabled"
    if outcome == "attached" and case_ref:
        case = session.scalar(select(Case).where(Case.ref == case_ref))
        if case is not None and not may_file_into(who, case):
            return f"its uploader may not file into case {case_ref}"
    if outcome == "new_case":
        if not may_assign_team(who, team):
            return f"its uploader may not open a case in team {team}"
        if not may_open_case_for(session, who, customer_id=customer_id):
            return f"its uploader may not open a case for customer {customer_id}"
    return None
