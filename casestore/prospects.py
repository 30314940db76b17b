"""Prospects meet the CRM: when an imported customer turns out to be someone who wrote before.

A new case from a person the CRM did not know keeps a *prospect* customer (``P-<item id>``,
``casestore.customers.prospect_customer``) built from what they wrote.  When a CRM import later
brings a customer whose contact details match a live prospect, ``reconcile_prospects`` decides,
the way CRMs with duplicate management do (HubSpot de-duplicates contacts on the email address;
Salesforce and Dynamics flag other likely duplicates for a person):

* **merge automatically** when the email address is the same (normalised) and the prospect's
  name does not contradict the CRM's (every word of the name the prospect gave, titles aside,
  is in the CRM's name, or the prospect gave no name).  An email address reaches one mailbox,
  and the prospect was made from mail that came from it or named it.
* **a review link** (``prospect_links.state = 'review'``) for a person to decide otherwise: the
  same phone number only (households, switchboards and recycled numbers share one), or the
  same email under a different name (a shared family address).  ``merge_prospect`` (``casework
  customer merge``) carries out the person's decision; ``dismiss_link`` records a "not the same".

A merge moves every case of the prospect to the customer (an audit event ``customer.merged`` on
each case, one on no case for the merge itself), retires the prospect (``merged_into_id``; its
email, phone and postcode are cleared so no look-up finds it again; the old values stay in the
audit event), and records the link as ``merged``.  It is idempotent: a re-import finds no live
prospect (merged) or the link it made before (review, dismissed) and does nothing again.
The caller re-indexes the moved cases (their documents carry the customer in the search index).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from casestore import audit
from casestore.customers import PROSPECT_PREFIX, get_customer
from casestore.errors import Conflict, InvalidInput
from casestore.models import Case, Customer, ProspectLink, utcnow
from casestore.validation import phone_equivalents

log = logging.getLogger(__name__)

_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev"})


@dataclass
class Reconciled:
    """What ``reconcile_prospects`` did for one CRM customer."""

    merged: list[str] = field(default_factory=list)  # prospect CRM ids merged into the customer
    to_review: list[str] = field(default_factory=list)  # prospect CRM ids linked for a person to decide
    moved_cases: list[str] = field(default_factory=list)  # case refs now the customer's


def is_prospect(customer: Customer) -> bool:
    return customer.customer_id.startswith(PROSPECT_PREFIX)


def _words(name: str | None) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", (name or "").lower()) if len(w) > 1 and w not in _TITLES}


def names_agree(prospect_name: str | None, crm_name: str) -> bool:
    """The prospect's name does not contradict the CRM's: every word of it is in the CRM's name,
    or it has no name words (a prospect shown by its email address or phone number)."""
    given = prospect_name or ""
    if "@" in given:  # shown by its email address: no name was given
        return True
    words = _words(given)
    return not words or words <= _words(crm_name)


def any_live(session: Session) -> bool:
    """Whether any prospect is waiting to meet the CRM (an import skips the look-ups when none is)."""
    return session.scalar(select(Customer.id).where(
        Customer.customer_id.startswith(PROSPECT_PREFIX, autoescape=True), Customer.merged_into_id.is_(None))
        .limit(1)) is not None


def _live_prospects(session: Session, customer: Customer, phone_region: str) -> list[tuple[Customer, str]]:
    """Live prospects sharing the customer's email or phone (written nationally or
    internationally: ``07911...`` is ``+447911...`` in ``phone_region``), each with what matched."""
    clauses = []
    if customer.email:
        clauses.append(Customer.email == customer.email)
    if customer.phone_normalised:
        clauses.append(Customer.phone_normalised.in_(phone_equivalents(customer.phone_normalised,
                                                                       region=phone_region)))
    if not clauses:
        return []
    found = session.scalars(select(Customer).where(
        Customer.customer_id.startswith(PROSPECT_PREFIX, autoescape=True), Customer.merged_into_id.is_(None),
        Customer.id != customer.id, or_(*clauses)).order_by(Customer.id)).all()
    out = []
    for p in found:
        if customer.email and p.email == customer.email:
            out.append((p, "email" if names_agree(p.name, customer.name) else "email_name_differs"))
        else:
            out.append((p, "phone"))
    return out


def reconcile_prospects(session: Session, *, customer: Customer, actor: str = "import",
                        phone_region: str = "GB") -> Reconciled:
    """Merge or link the live prospects this CRM customer matches (see the module docstring)."""
    done = Reconciled()
    if is_prospect(customer) or customer.merged_into_id is not None:
        return done
    for prospect, matched_on in _live_prospects(session, customer, phone_region):
        link = session.scalar(select(ProspectLink).where(ProspectLink.prospect_id == prospect.id,
                                                         ProspectLink.customer_id == customer.id))
        if link is not None:  # decided before (review or dismissed): a re-import changes nothing
            continue
        if matched_on == "email":
            done.moved_cases.extend(_merge(session, prospect=prospect, into=customer, matched_on=matched_on,
                                           actor=actor, reason="same email address, names agree"))
            done.merged.append(prospect.customer_id)
        else:
            session.add(ProspectLink(prospect_id=prospect.id, customer_id=customer.id, matched_on=matched_on,
                                     state="review"))
            session.flush()
            audit.record(session, actor=actor, action="customer.match_review",
                         reason=f"prospect {prospect.customer_id} may be customer {customer.customer_id} "
                                f"({matched_on.replace('_', ' ')}): a person decides "
                                f"(casework customer merge {prospect.customer_id} {customer.customer_id})",
                         details={"prospect": prospect.customer_id, "customer": customer.customer_id,
                                  "matched_on": matched_on})
            done.to_review.append(prospect.customer_id)
    if done.merged or done.to_review:
        log.info("customer %s: %d prospect(s) merged, %d to review", customer.customer_id, len(done.merged),
                 len(done.to_review))
    return done


def _merge(session: Session, *, prospect: Customer, into: Customer, matched_on: str, actor: str,
           reason: str) -> list[str]:
    """Move the prospect's cases to ``into`` and retire it; the moved case refs."""
    cases = session.scalars(select(Case).where(Case.customer_id == prospect.id).order_by(Case.id)).all()
    refs = [c.ref for c in cases]
    session.execute(update(Case).where(Case.customer_id == prospect.id)
                    .values(customer_id=into.id, updated_at=utcnow()))
    was = {"name": prospect.name, "email": prospect.email, "phone": prospect.phone, "postcode": prospect.postcode,
           "address": prospect.address}
    prospect.merged_into_id = into.id
    prospect.email = prospect.phone = prospect.phone_normalised = None
    prospect.postcode = prospect.postcode_normalised = None
    prospect.updated_at = utcnow()
    link = session.scalar(select(ProspectLink).where(ProspectLink.prospect_id == prospect.id,
                                                     ProspectLink.customer_id == into.id))
    if link is None:
        link = ProspectLink(prospect_id=prospect.id, customer_id=into.id, matched_on=matched_on, state="merged")
        session.add(link)
    link.state, link.decided_at, link.decided_by = "merged", utcnow(), actor
    session.flush()
    details = {"prospect": prospect.customer_id, "customer": into.customer_id, "matched_on": matched_on,
               "prospect_was": was, "cases": refs}
    for case in cases:
        audit.record(session, actor=actor, action="customer.merged", case=case, flush=False,
                     reason=f"prospect {prospect.customer_id} merged into customer {into.customer_id}: {reason}",
                     details=details)
    audit.record(session, actor=actor, action="customer.merged",
                 reason=f"prospect {prospect.customer_id} merged into customer {into.customer_id}: {reason}",
                 details=details)
    return refs


def merge_prospect(session: Session, *, prospect_id: str, customer_id: str, actor: str,
                   reason: str = "a person decided they are the same") -> list[str]:
    """A person's decision: merge this prospect into this CRM customer; the moved case refs.

    Conflict if the prospect was merged already (into another customer: say which); InvalidInput
    if the first is not a prospect or the second is one."""
    prospect = get_customer(session, customer_id=prospect_id)
    into = get_customer(session, customer_id=customer_id)
    if not is_prospect(prospect):
        raise InvalidInput(f"{prospect.customer_id} is not a prospect (P-...): only a prospect is merged into a "
                           "CRM customer")
    if is_prospect(into):
        raise InvalidInput(f"{into.customer_id} is a prospect: merge into the CRM's customer")
    if prospect.merged_into_id is not None:
        if prospect.merged_into_id == into.id:
            return []
        other = session.get(Customer, prospect.merged_into_id)
        raise Conflict(f"prospect {prospect.customer_id} was merged into {other.customer_id if other else '?'} "
                       "already")
    link = session.scalar(select(ProspectLink).where(ProspectLink.prospect_id == prospect.id,
                                                     ProspectLink.customer_id == into.id))
    return _merge(session, prospect=prospect, into=into, matched_on=link.matched_on if link else "person",
                  actor=actor, reason=reason)


def dismiss_link(session: Session, *, prospect_id: str, customer_id: str, actor: str) -> None:
    """A person's decision: this prospect is not this customer (the link stays, dismissed)."""
    prospect = get_customer(session, customer_id=prospect_id)
    into = get_customer(session, customer_id=customer_id)
    link = session.scalar(select(ProspectLink).where(ProspectLink.prospect_id == prospect.id,
                                                     ProspectLink.customer_id == into.id))
    if link is None or link.state != "review":
        raise Conflict(f"no open review of {prospect.customer_id} and {into.customer_id}")
    link.state, link.decided_at, link.decided_by = "dismissed", utcnow(), actor
    audit.record(session, actor=actor, action="customer.match_dismissed",
                 reason=f"prospect {prospect.customer_id} is not customer {into.customer_id}",
                 details={"prospect": prospect.customer_id, "customer": into.customer_id})


@dataclass(frozen=True)
class Review:
    prospect_id: str
    prospect_name: str
    customer_id: str
    customer_name: str
    matched_on: str
    cases: list[str]


def review_count(session: Session) -> int:
    """How many prospect/customer pairs wait for a person (all teams: the page filters what it lists)."""
    prospect = Customer.__table__.alias("p")
    return int(session.scalar(
        select(func.count()).select_from(ProspectLink).join(prospect, prospect.c.id == ProspectLink.prospect_id)
        .where(ProspectLink.state == "review", prospect.c.merged_into_id.is_(None))) or 0)


def open_reviews(session: Session, *, prospect_id: str | None = None,
                 customer_id: str | None = None) -> list[Review]:
    """Prospect/customer pairs waiting for a person, oldest first; only the pair named when
    ``prospect_id`` and ``customer_id`` (CRM ids) are given.  Two queries, however many reviews."""
    prospect = Customer.__table__.alias("p")
    crm = Customer.__table__.alias("c")
    query = (select(prospect.c.id, prospect.c.customer_id, prospect.c.name, crm.c.customer_id, crm.c.name,
                    ProspectLink.matched_on)
             .join(prospect, prospect.c.id == ProspectLink.prospect_id).join(crm, crm.c.id == ProspectLink.customer_id)
             .where(ProspectLink.state == "review", prospect.c.merged_into_id.is_(None)).order_by(ProspectLink.id))
    if prospect_id is not None:
        query = query.where(prospect.c.customer_id == prospect_id)
    if customer_id is not None:
        query = query.where(crm.c.customer_id == customer_id)
    rows = session.execute(query).all()
    refs: dict[int, list[str]] = {pid: [] for pid, *_ in rows}
    if refs:
        for owner, ref in session.execute(select(Case.customer_id, Case.ref)
                                          .where(Case.customer_id.in_(list(refs))).order_by(Case.id)):
            if owner is not None:  # always: the IN list holds no NULL
                refs[owner].append(ref)
    return [Review(prospect_id=p_cid, prospect_name=p_name, customer_id=c_cid, customer_name=c_name,
                   matched_on=matched_on, cases=list(refs[pid]))
            for pid, p_cid, p_name, c_cid, c_name, matched_on in rows]
