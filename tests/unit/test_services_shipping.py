"""Shipping's pure handler: daily carrier capacity, deterministic injected failures, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from events.envelope import CloudEvent, new_event
from services.shipping import contract as c
from services.shipping.domain import ShippingState, carrier_refuses, handle, invariants

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def cmd(
    type_: str, saga: str = "saga-1", when: datetime = MONDAY, data: dict[str, Any] | None = None
) -> CloudEvent:
    return new_event(type_, source="test", sagaid=saga, data=data or {}, time=when)


def run(state: ShippingState, event: CloudEvent) -> tuple[ShippingState, CloudEvent]:
    new, outs = handle(state, event)
    assert len(outs) == 1 and outs[0].topic == "shipping.replies"
    return new, outs[0].event


def test_schedule_books_the_first_carrier_with_room_that_day() -> None:
    state = ShippingState.with_carriers([("fast", 1), ("slow", 1)])
    state, first = run(state, cmd(c.SCHEDULE, "a"))
    state, second = run(state, cmd(c.SCHEDULE, "b"))
    assert (first.type, first.data["carrier"], first.data["day"]) == (
        c.SCHEDULED,
        "fast",
        "2026-03-02",
    )
    assert second.data["carrier"] == "slow" and second.data["shipment_id"]


def test_a_full_day_fails_with_a_reason_and_the_next_day_has_room() -> None:
    state = ShippingState.with_carriers([("fast", 1)])
    state, _ = run(state, cmd(c.SCHEDULE, "a"))
    state, full = run(state, cmd(c.SCHEDULE, "b"))
    assert (
        full.type == c.FAILED
        and "no carrier has capacity left on 2026-03-02" in (full.data["reason"])
    )
    state, tuesday = run(state, cmd(c.SCHEDULE, "b", when=TUESDAY))
    assert tuesday.type == c.SCHEDULED
    assert invariants(state)["within_capacity"]


def test_injected_failures_follow_the_saga_id_at_the_configured_rate() -> None:
    always = ShippingState.with_carriers([("fast", 10)], failure_rate=1.0)
    _, reply = run(always, cmd(c.SCHEDULE))
    assert reply.type == c.FAILED and "injected failure" in reply.data["reason"]
    assert reply.data["carrier"] == "fast"
    refused = [carrier_refuses(f"saga-{n}", 0.2) for n in range(2000)]
    assert 0.15 < sum(refused) / len(refused) < 0.25
    assert refused == [carrier_refuses(f"saga-{n}", 0.2) for n in range(2000)]


def test_retried_schedule_books_once_and_cancel_frees_the_slot() -> None:
    state = ShippingState.with_carriers([("fast", 1)])
    state, first = run(state, cmd(c.SCHEDULE, "a"))
    state, again = run(state, cmd(c.SCHEDULE, "a"))
    assert again.data == first.data and state.booked[("fast", "2026-03-02")] == 1
    state, cancelled = run(state, cmd(c.CANCEL, "a"))
    assert cancelled.type == c.CANCELLED
    assert cancelled.data["shipment_id"] == first.data["shipment_id"]
    state, other = run(state, cmd(c.SCHEDULE, "b"))
    assert other.type == c.SCHEDULED


def test_cancel_before_schedule_blocks_the_late_schedule() -> None:
    state = ShippingState.with_carriers([("fast", 1)])
    state, cancelled = run(state, cmd(c.CANCEL))
    assert cancelled.type == c.CANCELLED and cancelled.data["shipment_id"] is None
    state, late = run(state, cmd(c.SCHEDULE))
    assert late.type == c.FAILED and "cancelled" in late.data["reason"]
    assert dict(state.booked) == {}


def test_no_carrier_configured_fails() -> None:
    _, reply = run(ShippingState.with_carriers([]), cmd(c.SCHEDULE))
    assert reply.type == c.FAILED and "no carrier" in reply.data["reason"]


def test_choreography_reacts_to_payment_captured() -> None:
    captured = cmd("payment.captured", data={"order_id": "o1", "payment_id": "p1"})
    _, outs = handle(ShippingState.with_carriers([("fast", 1)]), captured)
    assert [(o.topic, o.event.type) for o in outs] == [("shipping.events", c.SCHEDULED)]
    assert outs[0].event.data["payment_id"] == "p1"
