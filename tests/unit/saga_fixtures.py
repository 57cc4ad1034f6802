"""Definitions shared by the machine's unit tests."""

from __future__ import annotations

from sagas.builder import saga
from sagas.definition import SagaDefinition
from sagas.retry import RetryPolicy


def three_step(*, pivot_last: bool = False, timeout: float = 5.0, retries: int = 1,
               comp_retries: int = 3, parallel_comp: bool = False) -> SagaDefinition:
    """reserve -> charge -> ship; reserve and charge compensable, ship optionally the pivot."""
    b = saga("order").triggered_by("order.placed", topic="orders")
    if parallel_comp:
        b = b.parallel_compensation()
    (
        b.step("reserve")
        .command("inventory.reserve", topic="inventory.commands")
        .replies("inventory.replies", success="inventory.reserved", failure="inventory.rejected")
        .compensate("inventory.release", topic="inventory.commands", success="inventory.released",
                    failure="inventory.release_failed", timeout=2.0,
                    retry=RetryPolicy(attempts=comp_retries, initial=0.5))
        .timeout(timeout).retry(retries, initial=0.1)
        .step("charge")
        .command("payment.charge", topic="payment.commands")
        .replies("payment.replies", success="payment.charged", failure="payment.declined")
        .compensate("payment.refund", topic="payment.commands", success="payment.refunded",
                    failure="payment.refund_failed", timeout=2.0,
                    retry=RetryPolicy(attempts=comp_retries, initial=0.5))
        .timeout(timeout).retry(retries, initial=0.1)
    )
    ship = (
        b.step("ship")
        .command("shipping.schedule", topic="shipping.commands")
        .replies("shipping.replies", success="shipping.scheduled", failure="shipping.failed")
        .timeout(timeout)
    )
    if pivot_last:
        ship.pivot().retry(3, initial=0.1)
    return b.build()


def with_parallel_group() -> SagaDefinition:
    """reserve || charge (one group), then ship."""
    return (
        saga("order-par")
        .step("reserve").in_group("prepare")
        .command("inventory.reserve", topic="inventory.commands")
        .replies("inventory.replies", success="inventory.reserved", failure="inventory.rejected")
        .compensate("inventory.release", topic="inventory.commands", success="inventory.released")
        .timeout(5)
        .step("charge").in_group("prepare")
        .command("payment.charge", topic="payment.commands")
        .replies("payment.replies", success="payment.charged", failure="payment.declined")
        .compensate("payment.refund", topic="payment.commands", success="payment.refunded")
        .timeout(5)
        .step("ship")
        .command("shipping.schedule", topic="shipping.commands")
        .replies("shipping.replies", success="shipping.scheduled", failure="shipping.failed")
        .timeout(5)
        .build()
    )


def choreographed() -> SagaDefinition:
    return (
        saga("order-chor").triggered_by("order.placed", topic="orders")
        .step("reserve")
        .observes("inventory.events", success="inventory.reserved", failure="inventory.rejected")
        .compensate("inventory.release", topic="inventory.commands", success="inventory.released")
        .timeout(5)
        .step("charge")
        .observes("payment.events", success="payment.charged", failure="payment.declined")
        .compensate("payment.refund", topic="payment.commands", success="payment.refunded")
        .timeout(5)
        .step("ship")
        .observes("shipping.events", success="shipping.scheduled", failure="shipping.failed")
        .timeout(5)
        .build()
    )
