"""Merging and dismissing prospect reviews (``casestore.prospects``): the one path the command line
(``casework customer merge|dismiss``) and the workbench page (``/customers/reviews``) share.

A merge moves the prospect's cases to the CRM customer in one transaction that also queues their
search update (their indexed documents name the prospect); the index is then updated at once
when it can be, else by ``casework serve`` from the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.search_follow import UPDATED, index_now
from api.wiring import Runtime
from casestore.prospects import dismiss_link, merge_prospect
from casestore.search import outbox as search_outbox


@dataclass(frozen=True)
class Merged:
    moved: list[str]  # the case references that moved to the customer
    search: str  # api.search_follow.UPDATED, or why search does not show it yet

    @property
    def search_updated(self) -> bool:
        return self.search == UPDATED


def merge(rt: Runtime, *, prospect: str, customer: str, actor: str, reason: str) -> Merged:
    """Merge prospect into customer (casestore.prospects.merge_prospect) and re-index the moved cases."""
    with rt.sessions() as session, session.begin():
        moved = merge_prospect(session, prospect_id=prospect, customer_id=customer, actor=actor, reason=reason)
        search_outbox.enqueue(session, case_refs=moved)
        outbox_ids = search_outbox.written_in(session)
    return Merged(moved=moved, search=index_now(rt, outbox_ids, what=f"prospect {prospect} merged into {customer}"))


def dismiss(rt: Runtime, *, prospect: str, customer: str, actor: str) -> None:
    """Record that the prospect is not this customer; the review closes and stays closed."""
    with rt.sessions() as session, session.begin():
        dismiss_link(session, prospect_id=prospect, customer_id=customer, actor=actor)
