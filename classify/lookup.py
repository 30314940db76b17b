"""What the classifier needs to know about the store, declared here so classify never imports casestore.

``casestore.lookup.StoreLookup`` satisfies ``CaseLookup`` structurally (a test checks the shape).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar, cast, runtime_checkable

T = TypeVar("T")


class CustomerView(Protocol):
    @property
    def customer_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def address(self) -> str | None: ...
    @property
    def postcode(self) -> str | None: ...
    @property
    def account_number(self) -> str | None: ...


class CaseView(Protocol):
    @property
    def ref(self) -> str: ...
    @property
    def customer_id(self) -> str | None: ...
    @property
    def case_type(self) -> str: ...
    @property
    def status(self) -> str: ...


class CaseLookup(Protocol):
    def case_by_ref(self, ref: str) -> CaseView | None:
        """The case with this exact reference (legacy or own format), or None."""
        ...

    def find_customers(
        self, *, email: str | None = None, phone: str | None = None, account_number: str | None = None,
        postcode: str | None = None, name: str | None = None,
    ) -> Sequence[CustomerView]:
        """Customers matching any of the given identifiers: email case-insensitive, phone and
        postcode normalised, account number exact, ``name`` a word of the customer's name
        (case-insensitive; at most 50 customers for it)."""
        ...

    def customer(self, customer_id: str) -> CustomerView | None:
        """The customer with this CRM id, or None."""
        ...

    def open_cases(self, customer_id: str) -> Sequence[CaseView]:
        """The customer's cases whose status is not closed, most recently active first."""
        ...

    def case_by_message_id(self, message_id: str) -> CaseView | None:
        """The case of the latest filed item with this Message-ID (angle brackets optional), or None."""
        ...

    def case_senders(self, ref: str) -> Sequence[str]:
        """Senders (email addresses lower-case, phone numbers) of the items filed in this case."""
        ...

    def case_of_last_sms_to(self, number: str) -> CaseView | None:
        """The case of the latest SMS we sent to this number (E.164, e.g. +447700900123) in the last
        30 days, or None: an SMS has no Message-ID, so a customer's answer threads by its number."""
        ...


@runtime_checkable
class BatchCaseLookup(Protocol):
    """What a store may offer beyond ``CaseLookup``: several of its questions in one query each."""

    def cases_by_refs(self, refs: Sequence[str]) -> Mapping[str, CaseView | None]:
        """``case_by_ref`` for each of ``refs``: every ref given is a key (None where no case has it)."""
        ...

    def customers_by_emails(self, emails: Sequence[str]) -> Mapping[str, Sequence[CustomerView]]:
        """``find_customers(email=e)`` for each of ``emails``: every address given is a key."""
        ...

    def customers_by_names(self, names: Sequence[str]) -> Mapping[str, Sequence[CustomerView]]:
        """``find_customers(name=n)`` for each of ``names`` (surnames): every name given is a key."""
        ...


class MemoLookup:
    """A ``CaseLookup`` that asks the wrapped one each question once.

    For one batch of items read in one snapshot: several items of a batch (and several entities
    of one item) ask the same things — the same sender, the same case, the same surname. Do not
    keep one across batches: it never forgets.
    """

    def __init__(self, inner: CaseLookup) -> None:
        self.inner = inner
        self._memo: dict[tuple[object, ...], object] = {}

    def _ask(self, key: tuple[object, ...], ask: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = ask()
        return cast(T, self._memo[key])

    def prefetch(self, *, case_refs: Sequence[str] = (), emails: Sequence[str] = (),
                 names: Sequence[str] = ()) -> None:
        """Answer ``case_by_ref`` for ``case_refs``, ``find_customers(email=...)`` for ``emails`` and
        ``find_customers(name=...)`` for ``names`` ahead, one query each, when the wrapped lookup
        offers ``BatchCaseLookup``; otherwise nothing (each question is then asked when it comes)."""
        if not isinstance(self.inner, BatchCaseLookup):
            return
        refs = [r for r in dict.fromkeys(case_refs) if ("case_by_ref", r) not in self._memo]
        if refs:
            for ref, case in self.inner.cases_by_refs(refs).items():
                self._memo[("case_by_ref", ref)] = case
        addresses = [e for e in dict.fromkeys(emails) if self._email_key(e) not in self._memo]
        if addresses:
            for email, customers in self.inner.customers_by_emails(addresses).items():
                self._memo[self._email_key(email)] = tuple(customers)
        surnames = [n for n in dict.fromkeys(names) if self._name_key(n) not in self._memo]
        if surnames:
            for name, customers in self.inner.customers_by_names(surnames).items():
                self._memo[self._name_key(name)] = tuple(customers)

    @staticmethod
    def _email_key(email: str) -> tuple[object, ...]:
        return ("find_customers", email, None, None, None, None)  # the key find_customers(email=...) asks

    @staticmethod
    def _name_key(name: str) -> tuple[object, ...]:
        return ("find_customers", None, None, None, None, name)  # the key find_customers(name=...) asks

    def case_by_ref(self, ref: str) -> CaseView | None:
        return self._ask(("case_by_ref", ref), lambda: self.inner.case_by_ref(ref))

    def find_customers(
        self, *, email: str | None = None, phone: str | None = None, account_number: str | None = None,
        postcode: str | None = None, name: str | None = None,
    ) -> Sequence[CustomerView]:
        return self._ask(
            ("find_customers", email, phone, account_number, postcode, name),
            lambda: tuple(self.inner.find_customers(email=email, phone=phone, account_number=account_number,
                                                    postcode=postcode, name=name)),
        )

    def customer(self, customer_id: str) -> CustomerView | None:
        return self._ask(("customer", customer_id), lambda: self.inner.customer(customer_id))

    def open_cases(self, customer_id: str) -> Sequence[CaseView]:
        return self._ask(("open_cases", customer_id), lambda: tuple(self.inner.open_cases(customer_id)))

    def case_by_message_id(self, message_id: str) -> CaseView | None:
        return self._ask(("case_by_message_id", message_id), lambda: self.inner.case_by_message_id(message_id))

    def case_senders(self, ref: str) -> Sequence[str]:
        return self._ask(("case_senders", ref), lambda: tuple(self.inner.case_senders(ref)))

    def case_of_last_sms_to(self, number: str) -> CaseView | None:
        return self._ask(("case_of_last_sms_to", number), lambda: self.inner.case_of_last_sms_to(number))
