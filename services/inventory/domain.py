"""Inventory: stock per SKU, reservations per saga. Pure: `handle(state, event)`.

Rules:

* ``reserve`` takes every line of the order or none; a saga holds at most one
  reservation, so a retried reserve answers with the same reservation_id.
* ``release`` gives the reservation back. With nothing reserved it is a no-op
  success that still records the saga as released, so a reserve arriving
  later (a late or retried command) is rejected instead of leaking stock.
* ``commit`` moves the reservation from reserved to shipped (after the pivot).
* For every SKU, available + reserved + shipped stays what it was at the start
  and no figure goes negative.

A state is never changed in place: each call returns a new one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from immutables import Map

from events.envelope import CloudEvent, derived_id
from sagas.participants.participant import Handler, Outgoing
from services.common import answer, react, refuse
from services.inventory.contract import (
    COMMIT,
    COMMIT_FAILED,
    COMMITTED,
    REJECTED,
    RELEASE,
    RELEASE_FAILED,
    RELEASED,
    RESERVE,
    RESERVED,
    SOURCE,
    Reserve,
)
from services.order.contract import ORDER_PLACED
from services.shipping.contract import SCHEDULED
from services.topics import DEFAULT_TOPICS, ServiceTopics

Lines = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SkuStock:
    available: int
    reserved: int = 0
    shipped: int = 0

    @property
    def total(self) -> int:
        return self.available + self.reserved + self.shipped


@dataclass(frozen=True, slots=True)
class Reservation:
    """A saga's claim on stock; ``lines`` is empty when it was released before reserving."""

    reservation_id: str | None
    lines: Lines
    status: Literal["reserved", "released", "committed"]


@dataclass(frozen=True, slots=True)
class InventoryState:
    initial: Mapping[str, int]
    stock: Mapping[str, SkuStock]
    reservations: Map[str, Reservation]  # by saga id

    @classmethod
    def with_stock(cls, initial: Mapping[str, int]) -> InventoryState:
        negative = {sku: n for sku, n in initial.items() if n < 0}
        if negative:
            raise ValueError(f"initial stock cannot be negative: {negative}")
        return cls(dict(initial), {sku: SkuStock(n) for sku, n in initial.items()}, Map())


Result = tuple[InventoryState, str, dict[str, Any]]


def reserve(state: InventoryState, saga_id: str, lines: Sequence[tuple[str, int]]) -> Result:
    existing = state.reservations.get(saga_id)
    if existing is not None:
        if existing.status == "released":
            reason = (
                "the saga's reservation was released (compensated): a late reserve gets nothing"
            )
            return refuse(state, REJECTED, reason)
        return state, RESERVED, {"reservation_id": existing.reservation_id}
    wanted = Counter[str]()
    for sku, qty in lines:
        wanted[sku] += qty
    for sku in sorted(wanted):
        if sku not in state.stock:
            return refuse(
                state, REJECTED, f"unknown SKU {sku}", sku=sku, wanted=wanted[sku], available=0
            )
        have = state.stock[sku].available
        if have < wanted[sku]:
            reason = f"insufficient stock of {sku}: wanted {wanted[sku]}, available {have}"
            return refuse(state, REJECTED, reason, sku=sku, wanted=wanted[sku], available=have)
    stock = dict(state.stock)
    for sku, qty in wanted.items():
        s = stock[sku]
        stock[sku] = replace(s, available=s.available - qty, reserved=s.reserved + qty)
    rid = derived_id(saga_id, "reservation")
    held = tuple(sorted(wanted.items()))
    reservations = state.reservations.set(saga_id, Reservation(rid, held, "reserved"))
    return replace(state, stock=stock, reservations=reservations), RESERVED, {"reservation_id": rid}


def release(state: InventoryState, saga_id: str) -> Result:
    existing = state.reservations.get(saga_id)
    if existing is None:
        tombstone = Reservation(None, (), "released")
        reservations = state.reservations.set(saga_id, tombstone)
        return replace(state, reservations=reservations), RELEASED, {"released": []}
    if existing.status == "committed":
        reason = f"reservation {existing.reservation_id} is already shipped; it cannot be released"
        return refuse(state, RELEASE_FAILED, reason)
    data = {"reservation_id": existing.reservation_id, "released": _lines(existing.lines)}
    if existing.status == "released":
        return state, RELEASED, data
    stock = dict(state.stock)
    for sku, qty in existing.lines:
        s = stock[sku]
        stock[sku] = replace(s, available=s.available + qty, reserved=s.reserved - qty)
    reservations = state.reservations.set(saga_id, replace(existing, status="released"))
    return replace(state, stock=stock, reservations=reservations), RELEASED, data


def commit(state: InventoryState, saga_id: str) -> Result:
    existing = state.reservations.get(saga_id)
    if existing is None or existing.status == "released":
        why = "nothing is reserved" if existing is None else "its reservation was released"
        return state, COMMIT_FAILED, {"reason": f"cannot commit saga {saga_id}: {why}"}
    data = {"reservation_id": existing.reservation_id, "shipped": _lines(existing.lines)}
    if existing.status == "committed":
        return state, COMMITTED, data
    stock = dict(state.stock)
    for sku, qty in existing.lines:
        s = stock[sku]
        stock[sku] = replace(s, reserved=s.reserved - qty, shipped=s.shipped + qty)
    reservations = state.reservations.set(saga_id, replace(existing, status="committed"))
    return replace(state, stock=stock, reservations=reservations), COMMITTED, data


def make_handler(topics: ServiceTopics = DEFAULT_TOPICS) -> Handler[InventoryState]:
    """The participant handler; commands are answered, choreography events reacted to."""

    def handle(state: InventoryState, event: CloudEvent) -> tuple[InventoryState, list[Outgoing]]:
        t = event.type
        if t in (RESERVE, ORDER_PLACED):
            order = Reserve.model_validate(event.data)
            result = reserve(state, event.sagaid, [(x.sku, x.qty) for x in order.lines])
        elif t == RELEASE:
            result = release(state, event.sagaid)
        elif t in (COMMIT, SCHEDULED):
            result = commit(state, event.sagaid)
        else:
            return state, []
        new, type_, data = result
        if t in (ORDER_PLACED, SCHEDULED):
            return new, [react(event, topics.inventory_events, SOURCE, type_, data)]
        return new, [answer(event, topics.inventory_replies, SOURCE, type_, data)]

    return handle


handle = make_handler()


def invariants(state: InventoryState) -> dict[str, Any]:
    """Per SKU: initial, available, reserved, shipped, and whether the books balance."""
    skus = {
        sku: {
            "initial": state.initial.get(sku, 0),
            "available": s.available,
            "reserved": s.reserved,
            "shipped": s.shipped,
        }
        for sku, s in sorted(state.stock.items())
    }
    conserved = all(
        s.total == state.initial.get(sku, 0) and min(s.available, s.reserved, s.shipped) >= 0
        for sku, s in state.stock.items()
    )
    return {"skus": skus, "conserved": conserved}


def _lines(lines: Lines) -> list[dict[str, Any]]:
    return [{"sku": sku, "qty": qty} for sku, qty in lines]
