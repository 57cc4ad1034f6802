"""The demo's invariant checks (`services.demo.checks`) on hand-made runs: a consistent one
passes every check, and each kind of break is flagged by its own check with a message
that names the order, SKU or amount that is wrong.

The world: three orders of the shipped orchestrated order saga. ``ord-1`` completed
(2 x SKU-A shipped, 10.00 captured); ``ord-2`` had its stock reserved and its payment
authorized, then the capture failed, so the authorization was voided and the stock
released, last step first; ``ord-3`` found no stock and needed no compensation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from services import definitions
from services.demo.checks import Check, run_all
from services.demo.observe import CompensationSent, SagaTrace
from services.demo.scenario import Order
from services.inventory import domain as inventory
from services.order import domain as order_service
from services.payment import domain as payment

DEFINITION = definitions.load("order_orchestrated")
INITIAL = {"SKU-A": 10, "SKU-B": 5}
ORDERS = [
    Order("s-1", "ord-1", "cust-1", (("SKU-A", 2),), 1_000),
    Order("s-2", "ord-2", "cust-2", (("SKU-B", 1),), 700),
    Order("s-3", "ord-3", "cust-3", (("SKU-B", 9),), 4_500),
]


def traces() -> dict[str, SagaTrace]:
    done = SagaTrace("s-1", "order", 1.0, 2.0, "completed")
    done.effects = {
        "reserve_inventory": 1.1,
        "authorize_payment": 1.2,
        "capture_payment": 1.3,
        "schedule_shipment": 1.4,
        "commit_inventory": 1.5,
    }
    undone = SagaTrace("s-2", "order", 1.0, 3.0, "compensated", compensating_at=2.0)
    undone.effects = {"reserve_inventory": 1.1, "authorize_payment": 1.2}
    undone.failed = [("capture_payment", "card expired")]
    undone.compensations = [
        CompensationSent("authorize_payment", 1, "payment.void", 2.1),
        CompensationSent("reserve_inventory", 1, "inventory.release", 2.2),
    ]
    no_stock = SagaTrace("s-3", "order", 1.0, 1.5, "compensated", compensating_at=1.4)
    no_stock.failed = [("reserve_inventory", "insufficient stock")]
    return {t.saga_id: t for t in (done, undone, no_stock)}


def views() -> dict[str, Any]:
    """The services' /invariants documents for that run, in the shape they serve them."""
    return {
        "order": {
            "counts": {"pending": 0, "approved": 1, "rejected": 2},
            "orders": {
                "ord-1": {"status": "approved", "saga_outcome": "completed"},
                "ord-2": {"status": "rejected", "saga_outcome": "compensated"},
                "ord-3": {"status": "rejected", "saga_outcome": "compensated"},
            },
        },
        "inventory": {
            "skus": {
                "SKU-A": {"initial": 10, "available": 8, "reserved": 0, "shipped": 2},
                "SKU-B": {"initial": 5, "available": 5, "reserved": 0, "shipped": 0},
            },
        },
        "payment": {
            "captured": 1_000,
            "refunded": 0,
            "kept": 1_000,
            # authorized - voided - refunded per customer: cust-2's 7.00 hold was voided
            "exposure": {"cust-1": 1_000, "cust-2": 0},
            "within_limits": True,
            "kept_by_saga": {"s-1": 1_000},
        },
    }


@dataclass
class Run:
    orders: list[Order] = field(default_factory=lambda: list(ORDERS))
    traces: dict[str, SagaTrace] = field(default_factory=traces)
    views: dict[str, Any] = field(default_factory=views)

    def checks(self) -> list[Check]:
        return run_all(self.orders, self.traces, [DEFINITION], INITIAL, self.views)

    def broken(self) -> dict[str, Check]:
        return {c.name: c for c in self.checks() if not c.ok}


def problems(check: Check) -> str:
    return "\n".join([check.summary, *check.problems])


def test_a_consistent_run_passes_every_check() -> None:
    checks = Run().checks()
    assert [c.name for c in checks] == [
        "every saga terminal",
        "orders match their sagas",
        "stock conserved",
        "money conserved",
        "compensations in reverse order",
    ]
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert all(c.problems == [] for c in checks)


def test_the_views_have_the_shape_the_services_serve() -> None:
    """The hand-made views above are read the same way as the services' own documents: an
    untouched system (no orders) passes with the views its services compute."""
    served = {
        "order": order_service.invariants(order_service.OrdersState.for_sagas(["order"])),
        "inventory": inventory.invariants(inventory.InventoryState.with_stock(INITIAL)),
        "payment": payment.invariants(payment.PaymentState.with_limits({}, None)),
    }
    for name, view in served.items():
        assert set(views()[name]) <= set(view), f"{name}: the test's view has keys {name} lacks"
    checks = run_all([], {}, [DEFINITION], INITIAL, served)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_a_saga_that_did_not_end_is_flagged() -> None:
    run = Run()
    run.traces["s-2"] = replace(run.traces["s-2"], outcome=None, ended_at=None)
    del run.traces["s-3"]
    broken = run.broken()
    assert "every saga terminal" in broken
    text = problems(broken["every saga terminal"])
    assert "2 of 3 sagas did not end" in text
    assert "order ord-2 (saga s-2): started, not ended" in text
    assert "order ord-3 (saga s-3): never started" in text
    assert "ord-1" not in text
    # The order service cannot be judged against a saga that has no outcome either.
    assert "order ord-2: rejected, its saga has not ended" in problems(
        broken["orders match their sagas"]
    )


@pytest.mark.parametrize(
    ("order_id", "status", "message"),
    [
        (
            "ord-1",
            "rejected",
            "order ord-1: rejected (saga outcome there: completed), but saga s-1 ended completed",
        ),
        (
            "ord-2",
            "approved",
            "order ord-2: approved (saga outcome there: compensated), but saga "
            "s-2 ended compensated",
        ),
        ("ord-3", "pending", "order ord-3: pending"),
    ],
)
def test_an_order_whose_status_does_not_match_its_saga_is_flagged(
    order_id: str, status: str, message: str
) -> None:
    run = Run()
    run.views["order"]["orders"][order_id]["status"] = status
    broken = run.broken()
    assert set(broken) == {"orders match their sagas"}
    assert message in problems(broken["orders match their sagas"])


def test_an_order_the_order_service_never_saw_is_flagged() -> None:
    run = Run()
    del run.views["order"]["orders"]["ord-3"]
    broken = run.broken()
    assert set(broken) == {"orders match their sagas"}
    assert "order ord-3: unknown to the order service" in problems(
        broken["orders match their sagas"]
    )


@pytest.mark.parametrize(
    ("sku", "change", "message"),
    [
        # a unit appeared from nowhere
        ("SKU-A", {"available": 9}, "SKU-A: available 9 + reserved 0 + shipped 2 = 11, initial 10"),
        # a unit vanished
        ("SKU-B", {"available": 4}, "SKU-B: available 4 + reserved 0 + shipped 0 = 4, initial 5"),
        # a reservation never released (ord-2's compensation lost)
        ("SKU-B", {"available": 4, "reserved": 1}, "SKU-B: 1 still reserved"),
        # shipped more than the approved orders bought
        ("SKU-A", {"available": 7, "shipped": 3}, "SKU-A: shipped 3, approved orders bought 2"),
        # stock below zero, even if the sum balances
        ("SKU-B", {"available": 6, "reserved": -1}, "SKU-B: available 6 + reserved -1"),
    ],
)
def test_stock_that_is_not_conserved_is_flagged(
    sku: str, change: dict[str, int], message: str
) -> None:
    run = Run()
    run.views["inventory"]["skus"][sku].update(change)
    broken = run.broken()
    assert set(broken) == {"stock conserved"}
    assert message in problems(broken["stock conserved"])


def test_a_sku_missing_from_the_inventory_is_flagged() -> None:
    run = Run()
    del run.views["inventory"]["skus"]["SKU-B"]
    assert "SKU-B: unknown to the inventory service" in problems(run.broken()["stock conserved"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # charged twice: the double effect the engine must never cause
        (
            {"captured": 2_000, "kept": 2_000, "kept_by_saga": {"s-1": 2_000}},
            "captured 20.00 - refunded 0.00 = 20.00, approved orders total 10.00",
        ),
        # a compensated order whose money was kept
        (
            {
                "captured": 1_700,
                "kept": 1_700,
                "kept_by_saga": {"s-1": 1_000, "s-2": 700},
                "exposure": {"cust-1": 1_000, "cust-2": 700},
            },
            "order ord-2 rejected, payment keeps 7.00",
        ),
        # an approved order never paid
        (
            {"captured": 0, "kept": 0, "kept_by_saga": {}, "exposure": {"cust-1": 0, "cust-2": 0}},
            "order ord-1 approved for 10.00, payment keeps 0.00",
        ),
        # an authorization left behind (ord-2's void never happened)
        ({"exposure": {"cust-1": 1_000, "cust-2": 700}}, "7.00 still authorized (held)"),
        ({"within_limits": False}, "a customer is over the credit limit"),
    ],
)
def test_money_that_is_not_conserved_is_flagged(change: dict[str, Any], message: str) -> None:
    run = Run()
    run.views["payment"].update(copy.deepcopy(change))
    broken = run.broken()
    assert set(broken) == {"money conserved"}
    assert message in problems(broken["money conserved"])


def test_compensations_out_of_order_are_flagged() -> None:
    run = Run()
    undone = run.traces["s-2"]
    undone.compensations = [  # released the stock while the payment was still authorized
        CompensationSent("reserve_inventory", 1, "inventory.release", 2.1),
        CompensationSent("authorize_payment", 1, "payment.void", 2.2),
    ]
    broken = run.broken()
    assert set(broken) == {"compensations in reverse order"}
    text = problems(broken["compensations in reverse order"])
    assert "1 of 2 compensated sagas undone out of order" in text
    assert (
        "order ord-2 (saga s-2): took effect ['reserve_inventory', 'authorize_payment'], "
        "compensated ['reserve_inventory', 'authorize_payment']"
    ) in text


def test_a_step_left_undone_is_flagged() -> None:
    run = Run()
    run.traces["s-2"].compensations.pop()  # the stock was never released
    check = run.broken()["compensations in reverse order"]
    assert "compensated ['authorize_payment']" in problems(check)


def test_a_compensation_before_the_saga_turned_back_is_flagged() -> None:
    run = Run()
    run.traces["s-2"].compensating_at = 2.15  # the void went out before saga.compensating
    check = run.broken()["compensations in reverse order"]
    assert "order ord-2 (saga s-2)" in problems(check)
    assert "before saga.compensating" in problems(check)


@pytest.mark.parametrize(
    ("service", "check"),
    [
        ("order", "orders match their sagas"),
        ("inventory", "stock conserved"),
        ("payment", "money conserved"),
    ],
)
def test_a_service_that_did_not_answer_fails_its_check(service: str, check: str) -> None:
    run = Run()
    del run.views[service]
    broken = run.broken()
    assert set(broken) == {check}
    assert f"the {service} service did not answer /invariants" in broken[check].summary
