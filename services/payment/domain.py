"""Payment: credit limits, a ledger, one payment per saga. Pure: `handle(state, event)`.

Every movement of money is a ledger entry; balances are derived from it:

    exposure(customer) = authorized - voided - refunded      (must stay <= limit)
    captured total - refunded total = money kept

Rules:

* ``authorize`` holds the amount if the customer's exposure stays within the
  limit, else declines saying by how much. One authorization per saga: a
  retried authorize answers with the same authorization_id.
* ``capture`` takes the held amount; ``refund`` gives a capture back;
  ``void`` drops a hold that was never captured.
* ``refund``/``void`` of something that never happened is a no-op success
  that is remembered: the original arriving later for that saga is refused,
  so a late command cannot take money after the saga was compensated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from immutables import Map
from pyrsistent import pvector
from pyrsistent.typing import PVector

from events.envelope import CloudEvent, derived_id
from sagas.participants.participant import Handler, Outgoing
from services.common import answer, react, refuse
from services.inventory.contract import RESERVED as INVENTORY_RESERVED
from services.payment.contract import (
    AUTHORIZE,
    AUTHORIZED,
    CAPTURE,
    CAPTURE_FAILED,
    CAPTURED,
    DECLINED,
    REFUND,
    REFUNDED,
    SOURCE,
    VOID,
    VOID_FAILED,
    VOIDED,
    Authorize,
)
from services.topics import DEFAULT_TOPICS, ServiceTopics

Kind = Literal["authorize", "capture", "void", "refund"]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    kind: Kind
    saga_id: str
    customer_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Payment:
    """The saga's payment; ``compensated`` remembers refund/void even of nothing."""

    customer_id: str | None
    amount: int
    status: Literal["none", "authorized", "captured", "voided", "refunded"]
    compensated: frozenset[str] = frozenset()
    authorization_id: str | None = None
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentState:
    limits: Mapping[str, int]
    default_limit: int | None
    payments: Map[str, Payment]  # by saga id
    ledger: PVector[LedgerEntry] = pvector()
    #: exposures(ledger), kept up to date so a decision does not re-read the ledger;
    #: persistent, so that booking one customer does not copy every customer's figure
    exposure: Map[str, int] = field(default_factory=Map)

    @classmethod
    def with_limits(cls, limits: Mapping[str, int], default_limit: int | None) -> PaymentState:
        return cls(dict(limits), default_limit, Map())

    def limit_of(self, customer_id: str) -> int | None:
        return self.limits.get(customer_id, self.default_limit)


Result = tuple[PaymentState, str, dict[str, Any]]


def _book(state: PaymentState, saga_id: str, payment: Payment, kind: Kind | None) -> PaymentState:
    payments = state.payments.set(saga_id, payment)
    if kind is None:
        return replace(state, payments=payments)
    assert payment.customer_id is not None
    entry = LedgerEntry(kind, saga_id, payment.customer_id, payment.amount)
    sign = {"authorize": 1, "capture": 0, "void": -1, "refund": -1}[kind]
    customer = payment.customer_id
    exposure = state.exposure.set(customer, state.exposure.get(customer, 0) + sign * payment.amount)
    return replace(state, payments=payments, ledger=state.ledger.append(entry), exposure=exposure)


def authorize(state: PaymentState, saga_id: str, customer_id: str, amount: int) -> Result:
    p = state.payments.get(saga_id)
    if p is not None and p.compensated:
        done = " and ".join(sorted(p.compensated))
        reason = f"the saga's payment was compensated ({done}): a late authorize holds nothing"
        return refuse(state, DECLINED, reason)
    if p is not None and p.status in ("authorized", "captured"):
        return state, AUTHORIZED, {"authorization_id": p.authorization_id, "amount": p.amount}
    limit = state.limit_of(customer_id)
    if limit is None:
        return state, DECLINED, {"reason": f"unknown customer {customer_id}"}
    in_use = state.exposure.get(customer_id, 0)
    if in_use + amount > limit:
        reason = (
            f"credit limit exceeded for {customer_id}: limit {limit}, in use {in_use}, "
            f"wanted {amount}"
        )
        return refuse(state, DECLINED, reason, limit=limit, in_use=in_use, wanted=amount)
    new = Payment(
        customer_id, amount, "authorized", authorization_id=derived_id(saga_id, "authorization")
    )
    state = _book(state, saga_id, new, "authorize")
    return state, AUTHORIZED, {"authorization_id": new.authorization_id, "amount": amount}


def capture(state: PaymentState, saga_id: str) -> Result:
    p = state.payments.get(saga_id)
    if p is not None and p.compensated:
        reason = "the saga's payment was compensated: a late capture takes nothing"
        return refuse(state, CAPTURE_FAILED, reason)
    if p is None or p.status not in ("authorized", "captured"):
        return state, CAPTURE_FAILED, {"reason": f"saga {saga_id} holds no authorization"}
    payment_id = p.payment_id or derived_id(saga_id, "payment")
    data = {"payment_id": payment_id, "authorization_id": p.authorization_id, "amount": p.amount}
    if p.status == "captured":
        return state, CAPTURED, data
    captured = replace(p, status="captured", payment_id=payment_id)
    return _book(state, saga_id, captured, "capture"), CAPTURED, data


def refund(state: PaymentState, saga_id: str) -> Result:
    p = state.payments.get(saga_id) or Payment(None, 0, "none")
    if p.status == "captured":
        new = replace(p, status="refunded", compensated=p.compensated | {"refund"})
        data = {"payment_id": p.payment_id, "refunded_amount": p.amount}
        return _book(state, saga_id, new, "refund"), REFUNDED, data
    if p.status == "refunded":
        return state, REFUNDED, {"payment_id": p.payment_id, "refunded_amount": p.amount}
    new = replace(p, compensated=p.compensated | {"refund"})
    return _book(state, saga_id, new, None), REFUNDED, {"payment_id": None, "refunded_amount": 0}


def void(state: PaymentState, saga_id: str) -> Result:
    p = state.payments.get(saga_id) or Payment(None, 0, "none")
    if p.status == "captured":
        reason = f"saga {saga_id}'s payment is captured and not refunded: refund it first"
        return refuse(state, VOID_FAILED, reason)
    if p.status == "authorized":
        new = replace(p, status="voided", compensated=p.compensated | {"void"})
        data = {"authorization_id": p.authorization_id, "voided_amount": p.amount}
        return _book(state, saga_id, new, "void"), VOIDED, data
    new = replace(p, compensated=p.compensated | {"void"})
    data = {"authorization_id": p.authorization_id, "voided_amount": 0}
    return _book(state, saga_id, new, None), VOIDED, data


def make_handler(topics: ServiceTopics = DEFAULT_TOPICS) -> Handler[PaymentState]:
    """Commands are answered on payment.replies; in choreography, `inventory.reserved`
    triggers authorize + capture, announced on payment.events."""

    def handle(state: PaymentState, event: CloudEvent) -> tuple[PaymentState, list[Outgoing]]:
        t, saga = event.type, event.sagaid
        if t == INVENTORY_RESERVED:
            order = Authorize.model_validate(event.data)
            state, type_, data = authorize(state, saga, order.customer_id, order.amount)
            if type_ == AUTHORIZED:
                state, type_, data = capture(state, saga)
            return state, [react(event, topics.payment_events, SOURCE, type_, data)]
        if t == AUTHORIZE:
            cmd = Authorize.model_validate(event.data)
            result = authorize(state, saga, cmd.customer_id, cmd.amount)
        elif t == CAPTURE:
            result = capture(state, saga)
        elif t == REFUND:
            result = refund(state, saga)
        elif t == VOID:
            result = void(state, saga)
        else:
            return state, []
        new, type_, data = result
        return new, [answer(event, topics.payment_replies, SOURCE, type_, data)]

    return handle


handle = make_handler()


def exposures(ledger: Sequence[LedgerEntry]) -> dict[str, int]:
    """Per customer: authorized - voided - refunded, from the ledger alone."""
    out: dict[str, int] = {}
    for e in ledger:
        sign = {"authorize": 1, "capture": 0, "void": -1, "refund": -1}[e.kind]
        out[e.customer_id] = out.get(e.customer_id, 0) + sign * e.amount
    return out


def totals(ledger: Sequence[LedgerEntry]) -> dict[str, int]:
    """Sum of each kind of entry."""
    out = {"authorize": 0, "capture": 0, "void": 0, "refund": 0}
    for e in ledger:
        out[e.kind] += e.amount
    return out


def invariants(state: PaymentState) -> dict[str, Any]:
    """Money figures from the ledger: captured, refunded, kept, and per-customer exposure."""
    t = totals(state.ledger)
    exposure = exposures(state.ledger)
    within = all(
        (limit := state.limit_of(c)) is None or 0 <= v <= limit for c, v in exposure.items()
    )
    kept_by_saga = {saga: p.amount for saga, p in state.payments.items() if p.status == "captured"}
    return {
        "captured": t["capture"],
        "refunded": t["refund"],
        "kept": t["capture"] - t["refund"],
        "authorized": t["authorize"],
        "voided": t["void"],
        "exposure": exposure,
        "within_limits": within,
        "kept_by_saga": kept_by_saga,
    }
