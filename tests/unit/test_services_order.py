"""The order service: pending until its saga ends, then approved or rejected."""

from __future__ import annotations

from typing import Any

from events.envelope import CloudEvent, new_event
from services.order.domain import OrdersState, handle, invariants, order_status

ORDER = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "amount": 700,
    "lines": [{"sku": "apple", "qty": 1}],
}


def ev(type_: str, saga: str = "saga-1", data: dict[str, Any] | None = None) -> CloudEvent:
    return new_event(type_, source="test", sagaid=saga, data=data or {})


def lifecycle(type_: str, saga: str = "saga-1", name: str = "order", **data: Any) -> CloudEvent:
    return ev(type_, saga, {"saga": name, "version": 1, **data})


def fresh() -> OrdersState:
    return OrdersState.for_sagas(["order", "order-choreo"])


def apply(state: OrdersState, *events: CloudEvent) -> OrdersState:
    for e in events:
        state, outs = handle(state, e)
        assert outs == []
    return state


def test_placed_is_pending_then_completed_is_approved() -> None:
    state = apply(fresh(), ev("order.placed", data=ORDER))
    assert order_status(state, "o-1")["status"] == "pending"  # type: ignore[index]
    state = apply(state, lifecycle("saga.completed"))
    status = order_status(state, "o-1")
    assert status is not None and status["status"] == "approved"
    assert status["saga_outcome"] == "completed"
    assert invariants(state)["approved_amount"] == 700


def test_compensated_aborted_and_failed_reject_with_the_reason() -> None:
    for outcome in ("saga.compensated", "saga.aborted", "saga.failed"):
        state = apply(
            fresh(),
            ev("order.placed", data=ORDER),
            lifecycle(outcome, reason="step 'reserve' failed: out of stock"),
        )
        status = order_status(state, "o-1")
        assert status is not None and status["status"] == "rejected"
        assert status["reason"] == "step 'reserve' failed: out of stock"


def test_an_outcome_before_the_order_is_kept() -> None:
    state = apply(fresh(), lifecycle("saga.completed"))
    assert invariants(state)["outcomes_without_order"] == 1
    state = apply(state, ev("order.placed", data=ORDER))
    assert order_status(state, "o-1")["status"] == "approved"  # type: ignore[index]


def test_a_repaired_saga_replaces_the_rejection() -> None:
    state = apply(
        fresh(),
        ev("order.placed", data=ORDER),
        lifecycle("saga.failed"),
        lifecycle("saga.completed"),
    )
    assert order_status(state, "o-1")["status"] == "approved"  # type: ignore[index]


def test_other_sagas_and_non_terminal_events_change_nothing() -> None:
    state = apply(fresh(), ev("order.placed", data=ORDER))
    after = apply(
        state,
        lifecycle("saga.completed", name="bank-transfer"),
        lifecycle("saga.started"),
        lifecycle("saga.step.failed"),
    )
    assert after == state


def test_unknown_order_has_no_status_and_counts_add_up() -> None:
    state = apply(
        fresh(),
        ev("order.placed", "a", {**ORDER, "order_id": "o-a"}),
        ev("order.placed", "b", {**ORDER, "order_id": "o-b"}),
        lifecycle("saga.compensated", "b"),
    )
    assert order_status(state, "nope") is None
    assert invariants(state)["counts"] == {"pending": 1, "approved": 0, "rejected": 1}
