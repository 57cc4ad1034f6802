"""The shipped order sagas run against the real service handlers, in memory.

The coordinator's state machine (through `sagas.testing`) sends commands;
the services' pure handlers, wrapped in `ParticipantCore` as the participant
runner wraps them, answer. What a user cares about is checked: terminal
states, compensations in reverse order, stock and money conserved.
"""

from __future__ import annotations

import random
from typing import Any

from events.envelope import CloudEvent
from sagas.participants.participant_store import ParticipantCore
from sagas.testing import SagaTestKit
from services import definitions
from services.inventory import domain as inventory
from services.order import domain as orders
from services.payment import domain as payment
from services.shipping import domain as shipping

STOCK = {"apple": 40, "pear": 40, "gone": 0}
LIMITS = {"rich": 10**9, "broke": 100}


class Services:
    """The three participants, each a core with its own state, plus the order service."""

    def __init__(self, failure_rate: float = 0.0) -> None:
        self.inventory = ParticipantCore(
            inventory.handle, inventory.InventoryState.with_stock(STOCK)
        )
        self.payment = ParticipantCore(
            payment.handle, payment.PaymentState.with_limits(LIMITS, None)
        )
        self.shipping = ParticipantCore(
            shipping.handle, shipping.ShippingState.with_carriers([("acme", 10**6)], failure_rate)
        )
        self.orders = orders.OrdersState.for_sagas(["order", "order-choreo"])
        self.lost: set[str] = set()  # command types whose replies are lost (effect happens)

    def core(self, type_: str) -> ParticipantCore[Any]:
        return {"inventory": self.inventory, "payment": self.payment, "shipping": self.shipping}[
            type_.split(".")[0]
        ]

    def respond(self, command: CloudEvent) -> tuple[str, dict[str, Any]] | None:
        applied = self.core(command.type).apply("commands", command)
        if command.type in self.lost:
            return None
        reply = applied.outputs[0].event
        return reply.type, reply.data

    def wire(self, kit: SagaTestKit) -> None:
        for step in kit.definition.steps:
            for spec in (step.command, step.compensation):
                if spec is not None:
                    kit.on(spec.type).respond(self.respond)

    def settle_orders(self, kit: SagaTestKit, placed: dict[str, dict[str, Any]]) -> None:
        for saga_id, order in placed.items():
            self.orders, _ = orders.handle(self.orders, _event("order.placed", saga_id, order))
        for event in kit.lifecycle:
            self.orders, _ = orders.handle(self.orders, event)

    def assert_books_balance(self, placed: dict[str, dict[str, Any]]) -> None:
        stock = inventory.invariants(self.inventory.state)
        assert stock["conserved"], stock
        money = payment.invariants(self.payment.state)
        view = orders.invariants(self.orders)
        assert view["counts"]["pending"] == 0
        assert money["kept"] == view["approved_amount"], (money, view["counts"])
        approved = [
            o for o in placed.values() if view["orders"][o["order_id"]]["status"] == "approved"
        ]
        shipped = sum(s["shipped"] for s in stock["skus"].values())
        assert shipped == sum(line["qty"] for o in approved for line in o["lines"])


def _event(type_: str, saga_id: str, data: dict[str, Any]) -> CloudEvent:
    from events.envelope import new_event

    return new_event(type_, source="test", sagaid=saga_id, data=data)


def order(n: int, customer: str = "rich", *lines: tuple[str, int]) -> dict[str, Any]:
    lines = lines or (("apple", 1),)
    return {
        "order_id": f"o-{n}",
        "customer_id": customer,
        "amount": 100 * sum(q for _, q in lines),
        "lines": [{"sku": s, "qty": q} for s, q in lines],
    }


def orchestrated(services: Services) -> SagaTestKit:
    kit = SagaTestKit(definitions.load("order_orchestrated"))
    services.wire(kit)
    return kit


def test_a_good_order_completes_and_ships() -> None:
    services = Services()
    saga = orchestrated(services).start("s1", order(1, "rich", ("apple", 2)))
    saga.expect_status("completed").expect_commands(
        "inventory.reserve",
        "payment.authorize",
        "payment.capture",
        "shipping.schedule",
        "inventory.commit",
    )
    assert services.inventory.state.stock["apple"].shipped == 2
    assert payment.invariants(services.payment.state)["kept"] == 200


def test_out_of_stock_is_rejected_with_nothing_to_undo() -> None:
    services = Services()
    saga = orchestrated(services).start("s1", order(1, "rich", ("apple", 1), ("gone", 1)))
    saga.expect_status("compensated").expect_commands("inventory.reserve")
    assert "insufficient stock of gone" in (saga.state.failure or "")


def test_declined_payment_releases_the_stock() -> None:
    services = Services()
    saga = orchestrated(services).start("s1", order(1, "broke", ("apple", 3)))
    saga.expect_status("compensated").expect_commands(
        "inventory.reserve",
        "payment.authorize",
        "inventory.release",
    )
    assert services.inventory.state.stock["apple"].available == 40


def test_shipping_failure_undoes_capture_authorization_and_reservation_in_reverse() -> None:
    services = Services(failure_rate=1.0)
    saga = orchestrated(services).start("s1", order(1, "rich", ("pear", 2)))
    saga.expect_status("compensated").expect_commands(
        "inventory.reserve",
        "payment.authorize",
        "payment.capture",
        "shipping.schedule",
        "payment.refund",
        "payment.void",
        "inventory.release",
    )
    money = payment.invariants(services.payment.state)
    assert money["captured"] == 200 and money["refunded"] == 200 and money["kept"] == 0
    assert money["exposure"] == {"rich": 0}
    assert inventory.invariants(services.inventory.state)["skus"]["pear"]["available"] == 40


def test_a_lost_reply_is_retried_without_a_second_reservation() -> None:
    services = Services()
    kit = orchestrated(services)
    services.lost.add("inventory.reserve")
    saga = kit.start("s1", order(1, "rich", ("apple", 5)))
    services.lost.clear()
    kit.advance(6)  # the deadline passes; the retry (a new command id) is answered
    saga.expect_status("completed")
    assert saga.command_types.count("inventory.reserve") == 2
    assert services.inventory.state.stock["apple"].shipped == 5  # reserved once, shipped once


def test_a_step_in_doubt_is_compensated_and_its_effect_undone() -> None:
    services = Services()
    kit = orchestrated(services)
    services.lost.add("payment.authorize")  # the hold is placed; no reply ever arrives
    saga = kit.start("s1", order(1, "rich", ("apple", 1)))
    kit.advance(60)
    saga.expect_status("compensated")
    assert saga.command_types[-2:] == ["payment.void", "inventory.release"]
    assert payment.invariants(services.payment.state)["exposure"] == {"rich": 0}
    assert services.inventory.state.stock["apple"].available == 40


def test_many_orders_with_injected_failures_keep_stock_and_money_conserved() -> None:
    rng = random.Random(7)
    services = Services(failure_rate=0.15)
    kit = orchestrated(services)
    placed: dict[str, dict[str, Any]] = {}
    for n in range(200):
        lines = [
            (
                rng.choice(["apple", "pear", "gone"] if rng.random() < 0.1 else ["apple", "pear"]),
                rng.randint(1, 3),
            )
            for _ in range(rng.randint(1, 2))
        ]
        placed[f"s{n}"] = order(n, rng.choice(["rich"] * 9 + ["broke"]), *lines)
        kit.start(f"s{n}", placed[f"s{n}"])
    assert {s.status.value for s in kit.states.values()} <= {"completed", "compensated"}
    outcomes = [s.status.value for s in kit.states.values()]
    assert outcomes.count("completed") > 20 and outcomes.count("compensated") > 20
    services.settle_orders(kit, placed)
    services.assert_books_balance(placed)


def test_choreography_failure_at_the_pivot_is_compensated_by_the_coordinator() -> None:
    services = Services(failure_rate=1.0)
    kit = SagaTestKit(definitions.load("order_choreographed"))
    services.wire(kit)
    placed = _event("order.placed", "s1", order(1, "rich", ("apple", 2)))
    saga = kit.start("s1", placed.data)
    event = placed
    for core in (services.inventory, services.payment, services.shipping):
        (out,) = core.apply("events", event).outputs
        kit.publish("s1", out.event.type, out.event.data, causationid=out.event.causationid)
        event = out.event
    assert event.type == "shipping.failed"
    saga.expect_status("compensated").expect_commands("payment.refund", "inventory.release")
    assert payment.invariants(services.payment.state)["kept"] == 0
    assert services.inventory.state.stock["apple"].available == 40
