"""The demo's world: a catalogue, customers, the orders they place, and what goes wrong.

All of it follows from a seed, so two runs with the same seed place the same
orders. The failures are the business's own, injected through the services'
configuration (`services.config.ServicesConfig`):

* stock: ``SKU-OUT`` has none, and ``SKU-008`` only a little, so it runs out
  during the run;
* credit: ``cust-broke`` may owe at most 5.00, and ``cust-tight`` a little more
  than one order's worth, so its orders are declined while others are held;
* the carrier refuses a share of the shipments (decided per saga id);
* payment answers a share of its inputs late: always sooner than the shortest
  step deadline, so a late answer is slow but never mistaken for a lost one (a
  pivot in doubt would park the saga for an operator instead of finishing).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.envelope import derived_id
from sagas.definition import SagaDefinition

#: price in cents per SKU; SKU-OUT is listed (and priced) but never in stock
PRICES: Mapping[str, int] = {
    "SKU-001": 1_250,
    "SKU-002": 899,
    "SKU-003": 4_500,
    "SKU-004": 2_999,
    "SKU-005": 650,
    "SKU-006": 12_000,
    "SKU-007": 3_475,
    "SKU-008": 7_999,
    "SKU-OUT": 1_999,
}
SCARCE_SKU, SCARCE_STOCK = "SKU-008", 40
PLENTY = 100_000
CUSTOMERS = tuple(f"cust-{n:03d}" for n in range(1, 41))
BROKE, TIGHT = "cust-broke", "cust-tight"
CREDIT_LIMITS: Mapping[str, int] = {BROKE: 500, TIGHT: 25_000}


@dataclass(frozen=True)
class Failures:
    """How often each injected failure happens (shares of the orders placed)."""

    out_of_stock: float = 0.04  # orders with a line of SKU-OUT
    scarce: float = 0.10  # orders with a line of the scarce SKU
    broke: float = 0.04  # orders by the customer with a 5.00 limit
    tight: float = 0.06  # orders by the customer with a small limit
    carrier_failure_rate: float = 0.08
    late_service: str = "payment"
    late_probability: float = 0.10
    late_delay: float = 1.5  # seconds; must stay under every step's deadline


@dataclass(frozen=True)
class Order:
    """One order to place: its saga id is the key of all its records."""

    saga_id: str
    order_id: str
    customer_id: str
    lines: tuple[tuple[str, int], ...]
    amount: int

    def event_data(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "amount": self.amount,
            "lines": [{"sku": sku, "qty": qty} for sku, qty in self.lines],
        }


@dataclass(frozen=True)
class Scenario:
    orders: int = 500
    rate: float = 25.0  # orders placed per second, whatever the system's pace (open loop)
    seed: int = 7
    failures: Failures = field(default_factory=Failures)

    def initial_stock(self) -> dict[str, int]:
        stock = {sku: PLENTY for sku in PRICES}
        stock["SKU-OUT"] = 0
        stock[SCARCE_SKU] = SCARCE_STOCK
        return stock

    def services_config(self) -> dict[str, Any]:
        """The `ServicesConfig` sections (as plain data) that inject the failures."""
        f = self.failures
        config: dict[str, Any] = {
            "inventory": {"initial_stock": self.initial_stock()},
            "payment": {"credit_limits": dict(CREDIT_LIMITS), "default_credit_limit": 10**9},
            "shipping": {
                "carriers": [{"name": "parcelco", "daily_capacity": 1_000_000}],
                "failure_rate": f.carrier_failure_rate,
            },
        }
        if f.late_probability > 0:
            late = {"probability": f.late_probability, "delay": f.late_delay}
            config.setdefault(f.late_service, {})["late"] = late
        return config

    def make_orders(self) -> list[Order]:
        rng = random.Random(self.seed)
        f = self.failures
        regular = [sku for sku in PRICES if sku not in ("SKU-OUT", SCARCE_SKU)]
        orders = []
        for i in range(self.orders):
            skus = rng.sample(regular, rng.randint(1, 3))
            if rng.random() < f.out_of_stock:
                skus[-1] = "SKU-OUT"
            elif rng.random() < f.scarce:
                skus[-1] = SCARCE_SKU
            lines = tuple((sku, rng.randint(1, 3)) for sku in skus)
            roll = rng.random()
            if roll < f.broke:
                customer = BROKE
            elif roll < f.broke + f.tight:
                customer = TIGHT
            else:
                customer = rng.choice(CUSTOMERS)
            orders.append(
                Order(
                    saga_id=derived_id("demo-order", self.seed, i),
                    order_id=f"ord-{i + 1:05d}",
                    customer_id=customer,
                    lines=lines,
                    amount=sum(PRICES[sku] * qty for sku, qty in lines),
                )
            )
        return orders


def shortest_deadline(definitions: Sequence[SagaDefinition]) -> float | None:
    """The shortest timeout of any step or compensation (seconds), if any has one."""
    timeouts = [
        t
        for d in definitions
        for s in d.steps
        for t in (s.timeout, s.compensation.timeout if s.compensation else None)
        if t is not None
    ]
    return min(timeouts) if timeouts else None


def check_late_delay(scenario: Scenario, definitions: Sequence[SagaDefinition]) -> None:
    """Refuse a late delay that a step deadline would take for a lost answer."""
    deadline = shortest_deadline(definitions)
    f = scenario.failures
    if f.late_probability > 0 and deadline is not None and f.late_delay >= deadline:
        raise ValueError(
            f"late answers of {f.late_delay:g}s would miss the shortest step deadline "
            f"({deadline:g}s): the step would time out and a pivot could be left in doubt; "
            f"use a delay under {deadline:g}s"
        )
