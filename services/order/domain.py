"""Orders: pending -> approved | rejected, from `order.placed` and the saga's lifecycle.

The order's saga id is the ``sagaid`` of its `order.placed`. ``saga.completed``
approves it; ``saga.compensated``, ``saga.aborted`` and ``saga.failed`` reject
it. A parked (failed) saga can still be repaired by an operator, so a later
terminal event of the same saga replaces the status. Lifecycle events may
arrive before the order itself (they travel on another topic): the outcome is
kept and the order's details are filled in when it comes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from immutables import Map

from events.envelope import CloudEvent
from sagas.participants.participant import Outgoing
from services.order.contract import ORDER_PLACED, OrderPlaced

Status = Literal["pending", "approved", "rejected"]

TERMINAL: Mapping[str, Status] = {
    "saga.completed": "approved",
    "saga.compensated": "rejected",
    "saga.aborted": "rejected",
    "saga.failed": "rejected",
}


@dataclass(frozen=True, slots=True)
class Order:
    saga_id: str
    order_id: str | None
    customer_id: str | None
    amount: int
    status: Status
    saga_outcome: str | None = None  # completed / compensated / aborted / failed
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrdersState:
    sagas: frozenset[str]  # saga names whose lifecycle decides an order
    orders: Map[str, Order]  # by saga id
    by_order_id: Map[str, str]  # order id -> saga id

    @classmethod
    def for_sagas(cls, names: Collection[str]) -> OrdersState:
        return cls(frozenset(names), Map(), Map())


def place(state: OrdersState, saga_id: str, order: OrderPlaced) -> OrdersState:
    existing = state.orders.get(saga_id)
    base = existing or Order(saga_id, None, None, 0, "pending")
    placed = replace(
        base, order_id=order.order_id, customer_id=order.customer_id, amount=order.amount
    )
    return replace(
        state,
        orders=state.orders.set(saga_id, placed),
        by_order_id=state.by_order_id.set(order.order_id, saga_id),
    )


def settle(
    state: OrdersState, saga_id: str, lifecycle_type: str, data: Mapping[str, Any]
) -> OrdersState:
    status = TERMINAL[lifecycle_type]
    base = state.orders.get(saga_id) or Order(saga_id, None, None, 0, "pending")
    reason = data.get("reason") if status == "rejected" else None
    settled = replace(
        base,
        status=status,
        saga_outcome=lifecycle_type.removeprefix("saga."),
        reason=str(reason) if reason is not None else None,
    )
    return replace(state, orders=state.orders.set(saga_id, settled))


def handle(state: OrdersState, event: CloudEvent) -> tuple[OrdersState, list[Outgoing]]:
    if event.type == ORDER_PLACED:
        return place(state, event.sagaid, OrderPlaced.model_validate(event.data)), []
    if event.type in TERMINAL and event.data.get("saga") in state.sagas:
        return settle(state, event.sagaid, event.type, event.data), []
    return state, []


def order_status(state: OrdersState, order_id: str) -> dict[str, Any] | None:
    """The order's status and why, or None if no such order was placed."""
    saga_id = state.by_order_id.get(order_id)
    order = state.orders.get(saga_id) if saga_id is not None else None
    return None if order is None else _view(order)


def invariants(state: OrdersState) -> dict[str, Any]:
    """Counts by status, the approved total, and every placed order's status."""
    placed = [o for o in state.orders.values() if o.order_id is not None]
    statuses = ("pending", "approved", "rejected")
    counts = {s: sum(1 for o in placed if o.status == s) for s in statuses}
    return {
        "counts": counts,
        "approved_amount": sum(o.amount for o in placed if o.status == "approved"),
        "orders": {o.order_id: _view(o) for o in placed},
        "outcomes_without_order": sum(1 for o in state.orders.values() if o.order_id is None),
    }


def _view(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "saga_id": o.saga_id,
        "status": o.status,
        "saga_outcome": o.saga_outcome,
        "amount": o.amount,
        "reason": o.reason,
    }
