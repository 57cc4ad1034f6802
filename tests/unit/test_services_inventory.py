"""Inventory's pure handler: all-or-nothing reservations, releases that block late reserves,
commits, and stock that is conserved and never negative."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import CloudEvent, new_event
from services.inventory import contract as c
from services.inventory.domain import InventoryState, handle, invariants

STOCK = {"apple": 5, "pear": 2, "gone": 0}


def cmd(
    type_: str, saga: str = "saga-1", data: dict[str, Any] | None = None, id: str | None = None
) -> CloudEvent:
    return new_event(type_, source="test", sagaid=saga, data=data or {}, id=id)


def order(*lines: tuple[str, int]) -> dict[str, Any]:
    return {
        "order_id": "o-1",
        "customer_id": "c-1",
        "amount": 100,
        "lines": [{"sku": s, "qty": q} for s, q in lines],
    }


def fresh() -> InventoryState:
    return InventoryState.with_stock(STOCK)


def run(state: InventoryState, event: CloudEvent) -> tuple[InventoryState, CloudEvent, str]:
    new, outs = handle(state, event)
    assert len(outs) == 1
    return new, outs[0].event, outs[0].topic


def test_reserve_takes_every_line_and_answers_on_the_reply_topic() -> None:
    command = cmd(c.RESERVE, data=order(("apple", 2), ("pear", 1), ("apple", 1)))
    state, reply, topic = run(fresh(), command)
    assert topic == "inventory.replies"
    assert reply.type == c.RESERVED and reply.data["reservation_id"]
    assert reply.causationid == command.id and reply.sagaid == "saga-1"
    assert state.stock["apple"].available == 2 and state.stock["apple"].reserved == 3
    assert state.stock["pear"].available == 1 and state.stock["pear"].reserved == 1


def test_short_of_one_sku_reserves_nothing_and_names_it() -> None:
    before = fresh()
    state, reply, _ = run(before, cmd(c.RESERVE, data=order(("apple", 1), ("pear", 3))))
    assert reply.type == c.REJECTED
    assert reply.data["sku"] == "pear" and reply.data["wanted"] == 3
    assert reply.data["available"] == 2
    assert "pear" in reply.data["reason"] and "wanted 3" in reply.data["reason"]
    assert state.stock == before.stock


def test_an_sku_at_zero_and_an_unknown_sku_are_rejected() -> None:
    _, reply, _ = run(fresh(), cmd(c.RESERVE, data=order(("gone", 1))))
    assert reply.type == c.REJECTED and reply.data["available"] == 0
    _, reply, _ = run(fresh(), cmd(c.RESERVE, data=order(("plum", 1))))
    assert reply.type == c.REJECTED and "unknown SKU plum" in reply.data["reason"]


def test_a_retried_reserve_of_the_same_saga_gets_the_same_reservation_once() -> None:
    state, first, _ = run(fresh(), cmd(c.RESERVE, data=order(("apple", 2))))
    state, second, _ = run(state, cmd(c.RESERVE, data=order(("apple", 2))))  # new command id
    assert second.type == c.RESERVED
    assert second.data["reservation_id"] == first.data["reservation_id"]
    assert state.stock["apple"].reserved == 2


def test_release_gives_the_stock_back_and_repeats_harmlessly() -> None:
    state, _, _ = run(fresh(), cmd(c.RESERVE, data=order(("apple", 2))))
    state, reply, _ = run(state, cmd(c.RELEASE))
    assert reply.type == c.RELEASED and reply.data["released"] == [{"sku": "apple", "qty": 2}]
    state, again, _ = run(state, cmd(c.RELEASE))
    assert again.type == c.RELEASED
    assert state.stock["apple"].available == 5 and state.stock["apple"].reserved == 0


def test_release_before_reserve_is_a_no_op_that_blocks_the_late_reserve() -> None:
    state, reply, _ = run(fresh(), cmd(c.RELEASE))
    assert reply.type == c.RELEASED and reply.data["released"] == []
    state, late, _ = run(state, cmd(c.RESERVE, data=order(("apple", 1))))
    assert late.type == c.REJECTED and "released" in late.data["reason"]
    assert state.stock["apple"].available == 5


def test_commit_moves_reserved_to_shipped_and_cannot_be_released() -> None:
    state, _, _ = run(fresh(), cmd(c.RESERVE, data=order(("apple", 2))))
    state, reply, _ = run(state, cmd(c.COMMIT))
    assert reply.type == c.COMMITTED
    assert state.stock["apple"].reserved == 0 and state.stock["apple"].shipped == 2
    state, again, _ = run(state, cmd(c.COMMIT))
    assert again.type == c.COMMITTED and state.stock["apple"].shipped == 2
    state, release, _ = run(state, cmd(c.RELEASE))
    assert release.type == c.RELEASE_FAILED and "shipped" in release.data["reason"]


def test_commit_without_a_reservation_fails_with_a_reason() -> None:
    _, reply, _ = run(fresh(), cmd(c.COMMIT))
    assert reply.type == c.COMMIT_FAILED and "nothing is reserved" in reply.data["reason"]


def test_choreography_reacts_to_order_placed_and_shipping_scheduled_on_events_topic() -> None:
    placed = cmd("order.placed", data=order(("pear", 1)))
    state, event, topic = run(fresh(), placed)
    assert topic == "inventory.events" and event.type == c.RESERVED
    assert event.data["customer_id"] == "c-1" and event.data["reservation_id"]  # order carried
    assert event.causationid == placed.id
    state, event, topic = run(state, cmd("shipping.scheduled", data={"shipment_id": "x"}))
    assert topic == "inventory.events" and event.type == c.COMMITTED
    assert state.stock["pear"].shipped == 1


def test_other_types_change_nothing() -> None:
    state = fresh()
    assert handle(state, cmd("shipping.failed")) == (state, [])


def test_the_input_state_is_never_changed() -> None:
    state = fresh()
    snapshot = (dict(state.stock), dict(state.reservations))
    handle(state, cmd(c.RESERVE, data=order(("apple", 1))))
    assert (dict(state.stock), dict(state.reservations)) == snapshot


actions = st.lists(
    st.tuples(
        st.sampled_from([c.RESERVE, c.RELEASE, c.COMMIT]),
        st.integers(0, 5),  # saga
        st.lists(
            st.tuples(st.sampled_from(["apple", "pear", "gone"]), st.integers(1, 4)),
            min_size=1,
            max_size=3,
        ),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(actions)
def test_any_sequence_conserves_stock_and_never_goes_negative(seq: list[Any]) -> None:
    state = fresh()
    for type_, saga, lines in seq:
        state, outs = handle(state, cmd(type_, saga=f"s{saga}", data=order(*lines)))
        assert len(outs) == 1
        for sku, s in state.stock.items():
            assert s.available >= 0 and s.reserved >= 0 and s.shipped >= 0
            assert s.available + s.reserved + s.shipped == STOCK[sku]
    assert invariants(state)["conserved"]
    held = {sku: 0 for sku in STOCK}
    for r in state.reservations.values():
        if r.status == "reserved":
            for sku, qty in r.lines:
                held[sku] += qty
    assert held == {sku: s.reserved for sku, s in state.stock.items()}
