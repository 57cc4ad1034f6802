"""Shipping: carriers with a daily capacity, one shipment per saga. Pure: `handle(state, event)`.

The day a shipment is booked on is the UTC date of the command's ``time``
attribute, never the clock, so a replay books the same day. The injected
carrier failure is decided by a hash of the saga id (`unit_interval`): the
same saga fails on every attempt and on every replay.

``cancel`` frees the capacity; a cancel before any schedule is a no-op success
that makes a later schedule of that saga fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from immutables import Map

from events.envelope import CloudEvent, derived_id
from sagas.participants.participant import Handler, Outgoing, unit_interval
from services.common import answer, react, refuse
from services.payment.contract import CAPTURED as PAYMENT_CAPTURED
from services.shipping.contract import CANCEL, CANCELLED, FAILED, SCHEDULE, SCHEDULED, SOURCE
from services.topics import DEFAULT_TOPICS, ServiceTopics


@dataclass(frozen=True, slots=True)
class Shipment:
    shipment_id: str | None
    carrier: str | None
    day: str | None
    status: Literal["scheduled", "cancelled"]


@dataclass(frozen=True, slots=True)
class ShippingState:
    capacity: Mapping[str, int]  # carrier -> shipments per day, in order of preference
    failure_rate: float
    booked: Map[tuple[str, str], int]  # (carrier, day) -> shipments booked
    shipments: Map[str, Shipment]  # by saga id

    @classmethod
    def with_carriers(
        cls, carriers: Sequence[tuple[str, int]], failure_rate: float = 0.0
    ) -> ShippingState:
        return cls(dict(carriers), failure_rate, Map(), Map())


Result = tuple[ShippingState, str, dict[str, Any]]


def carrier_refuses(saga_id: str, failure_rate: float) -> bool:
    """The injected failure: the same answer for a saga every time it is asked."""
    return unit_interval(saga_id, "carrier-failure") < failure_rate


def schedule(state: ShippingState, saga_id: str, day: str) -> Result:
    existing = state.shipments.get(saga_id)
    if existing is not None:
        if existing.status == "cancelled":
            reason = "the saga's shipment was cancelled: a late schedule books nothing"
            return refuse(state, FAILED, reason)
        return state, SCHEDULED, _data(existing)
    if not state.capacity:
        return state, FAILED, {"reason": "no carrier is configured"}
    carrier = next(
        (c for c, cap in state.capacity.items() if state.booked.get((c, day), 0) < cap), None
    )
    if carrier is None:
        offered = ", ".join(f"{c}: {n}/day" for c, n in state.capacity.items())
        return refuse(state, FAILED, f"no carrier has capacity left on {day} ({offered})")
    if carrier_refuses(saga_id, state.failure_rate):
        reason = (
            f"carrier {carrier} refused the pickup (injected failure, rate {state.failure_rate:g})"
        )
        return refuse(state, FAILED, reason, carrier=carrier)
    shipment = Shipment(derived_id(saga_id, "shipment"), carrier, day, "scheduled")
    booked = state.booked.set((carrier, day), state.booked.get((carrier, day), 0) + 1)
    shipments = state.shipments.set(saga_id, shipment)
    return replace(state, booked=booked, shipments=shipments), SCHEDULED, _data(shipment)


def cancel(state: ShippingState, saga_id: str) -> Result:
    existing = state.shipments.get(saga_id)
    if existing is None:
        shipments = state.shipments.set(saga_id, Shipment(None, None, None, "cancelled"))
        return replace(state, shipments=shipments), CANCELLED, {"shipment_id": None}
    if existing.status == "cancelled":
        return state, CANCELLED, {"shipment_id": existing.shipment_id}
    assert existing.carrier is not None and existing.day is not None
    slot = (existing.carrier, existing.day)
    booked = state.booked.set(slot, state.booked[slot] - 1)
    shipments = state.shipments.set(saga_id, replace(existing, status="cancelled"))
    state = replace(state, booked=booked, shipments=shipments)
    return state, CANCELLED, {"shipment_id": existing.shipment_id}


def day_of(event: CloudEvent) -> str:
    return event.time.date().isoformat() if event.time is not None else "undated"


def make_handler(topics: ServiceTopics = DEFAULT_TOPICS) -> Handler[ShippingState]:
    def handle(state: ShippingState, event: CloudEvent) -> tuple[ShippingState, list[Outgoing]]:
        t = event.type
        if t in (SCHEDULE, PAYMENT_CAPTURED):
            result = schedule(state, event.sagaid, day_of(event))
        elif t == CANCEL:
            result = cancel(state, event.sagaid)
        else:
            return state, []
        new, type_, data = result
        if t == PAYMENT_CAPTURED:
            return new, [react(event, topics.shipping_events, SOURCE, type_, data)]
        return new, [answer(event, topics.shipping_replies, SOURCE, type_, data)]

    return handle


handle = make_handler()


def invariants(state: ShippingState) -> dict[str, Any]:
    scheduled = sum(1 for s in state.shipments.values() if s.status == "scheduled")
    within = all(n <= state.capacity.get(c, 0) and n >= 0 for (c, _), n in state.booked.items())
    return {
        "scheduled": scheduled,
        "cancelled": sum(1 for s in state.shipments.values() if s.status == "cancelled"),
        "booked": {f"{c}/{d}": n for (c, d), n in sorted(state.booked.items())},
        "within_capacity": within,
    }


def _data(s: Shipment) -> dict[str, Any]:
    return {"shipment_id": s.shipment_id, "carrier": s.carrier, "day": s.day}
