"""Definitions shared by the machine's unit tests, and the names of their messages."""

from __future__ import annotations

from typing import Any

from sagas.builder import saga
from sagas.definition import SagaDefinition
from sagas.retry import RetryPolicy
from sagas.testing import SagaTestKit

# Commands the coordinator sends.
RESERVE, CHARGE, SHIP, INVOICE = (
    "inventory.reserve",
    "payment.charge",
    "shipping.schedule",
    "billing.invoice",
)
RELEASE, REFUND = "inventory.release", "payment.refund"
# Replies and events participants publish.
RESERVED, REJECTED, RELEASED, RELEASE_FAILED = (
    "inventory.reserved",
    "inventory.rejected",
    "inventory.released",
    "inventory.release_failed",
)
CHARGED, DECLINED, REFUNDED, REFUND_FAILED = (
    "payment.charged",
    "payment.declined",
    "payment.refunded",
    "payment.refund_failed",
)
SCHEDULED, SHIP_FAILED = "shipping.scheduled", "shipping.failed"
INVOICED, INVOICE_FAILED = "billing.invoiced", "billing.invoice_failed"


def three_step(
    *,
    pivot_last: bool = False,
    timeout: float = 5.0,
    retries: int = 1,
    comp_retries: int = 3,
    parallel_comp: bool = False,
    charge_in_doubt: bool = True,
) -> SagaDefinition:
    """reserve -> charge -> ship; reserve and charge compensable, ship optionally the pivot."""
    b = saga("order").triggered_by("order.placed", topic="orders")
    if parallel_comp:
        b = b.parallel_compensation()
    charge = (
        b.step("reserve")
        .command(RESERVE, topic="inventory.commands")
        .replies("inventory.replies", success=RESERVED, failure=REJECTED)
        .compensate(
            RELEASE,
            topic="inventory.commands",
            success=RELEASED,
            failure=RELEASE_FAILED,
            timeout=2.0,
            retry=RetryPolicy(attempts=comp_retries, initial=0.5),
        )
        .timeout(timeout)
        .retry(retries, initial=0.1)
        .step("charge")
        .command(CHARGE, topic="payment.commands")
        .replies("payment.replies", success=CHARGED, failure=DECLINED)
        .compensate(
            REFUND,
            topic="payment.commands",
            success=REFUNDED,
            failure=REFUND_FAILED,
            timeout=2.0,
            retry=RetryPolicy(attempts=comp_retries, initial=0.5),
        )
        .timeout(timeout)
        .retry(retries, initial=0.1)
    )
    if not charge_in_doubt:
        charge.in_doubt_needs_no_compensation()
    ship = (
        b.step("ship")
        .command(SHIP, topic="shipping.commands")
        .replies("shipping.replies", success=SCHEDULED, failure=SHIP_FAILED)
        .timeout(timeout)
    )
    if pivot_last:
        ship.pivot().retry(3, initial=0.1)
    return b.build()


def with_pivot(*, invoice_retries: int = 3) -> SagaDefinition:
    """reserve -> charge -> ship (the pivot) -> invoice: after shipping, only forward."""
    return (
        saga("order-pivot")
        .step("reserve")
        .command(RESERVE, topic="inventory.commands")
        .replies("inventory.replies", success=RESERVED, failure=REJECTED)
        .compensate(RELEASE, topic="inventory.commands", success=RELEASED)
        .timeout(5)
        .step("charge")
        .command(CHARGE, topic="payment.commands")
        .replies("payment.replies", success=CHARGED, failure=DECLINED)
        .compensate(REFUND, topic="payment.commands", success=REFUNDED)
        .timeout(5)
        .step("ship")
        .pivot()
        .command(SHIP, topic="shipping.commands")
        .replies("shipping.replies", success=SCHEDULED, failure=SHIP_FAILED)
        .timeout(5)
        .step("invoice")
        .command(INVOICE, topic="billing.commands")
        .replies("billing.replies", success=INVOICED, failure=INVOICE_FAILED)
        .timeout(5)
        .retry(invoice_retries, initial=0.5)
        .build()
    )


def with_parallel_group() -> SagaDefinition:
    """reserve || charge (one group), then ship."""
    return (
        saga("order-par")
        .step("reserve")
        .in_group("prepare")
        .command(RESERVE, topic="inventory.commands")
        .replies("inventory.replies", success=RESERVED, failure=REJECTED)
        .compensate(RELEASE, topic="inventory.commands", success=RELEASED)
        .timeout(5)
        .step("charge")
        .in_group("prepare")
        .command(CHARGE, topic="payment.commands")
        .replies("payment.replies", success=CHARGED, failure=DECLINED)
        .compensate(REFUND, topic="payment.commands", success=REFUNDED)
        .timeout(5)
        .step("ship")
        .command(SHIP, topic="shipping.commands")
        .replies("shipping.replies", success=SCHEDULED, failure=SHIP_FAILED)
        .timeout(5)
        .build()
    )


def choreographed() -> SagaDefinition:
    """Services drive themselves; the saga watches their events and only sends undos."""
    return (
        saga("order-chor")
        .triggered_by("order.placed", topic="orders")
        .step("reserve")
        .observes("inventory.events", success=RESERVED, failure=REJECTED)
        .compensate(RELEASE, topic="inventory.commands", success=RELEASED)
        .timeout(5)
        .step("charge")
        .observes("payment.events", success=CHARGED, failure=DECLINED)
        .compensate(REFUND, topic="payment.commands", success=REFUNDED)
        .timeout(5)
        .step("ship")
        .observes("shipping.events", success=SCHEDULED, failure=SHIP_FAILED)
        .timeout(5)
        .build()
    )


NOTIFY, NOTIFIED, NOTIFY_FAILED = "notify.send", "notify.sent", "notify.failed"


def pivot_then_group(*, retries: int = 2) -> SagaDefinition:
    """reserve -> ship (the pivot) -> invoice || notify: a parallel stage after the pivot."""
    return (
        saga("order-fanout")
        .step("reserve")
        .command(RESERVE, topic="inventory.commands")
        .replies("inventory.replies", success=RESERVED, failure=REJECTED)
        .compensate(RELEASE, topic="inventory.commands", success=RELEASED)
        .timeout(5)
        .step("ship")
        .pivot()
        .command(SHIP, topic="shipping.commands")
        .replies("shipping.replies", success=SCHEDULED, failure=SHIP_FAILED)
        .timeout(5)
        .step("invoice")
        .in_group("after")
        .command(INVOICE, topic="billing.commands")
        .replies("billing.replies", success=INVOICED, failure=INVOICE_FAILED)
        .timeout(5)
        .retry(retries, initial=0.5)
        .step("notify")
        .in_group("after")
        .command(NOTIFY, topic="notify.commands")
        .replies("notify.replies", success=NOTIFIED, failure=NOTIFY_FAILED)
        .timeout(5)
        .retry(retries, initial=0.5)
        .build()
    )


# -- scripting participants -------------------------------------------------------------

#: One answer of a scripted participant: a reply type, (type, data), or None for silence.
Answer = str | tuple[str, dict[str, Any]] | None

STARTED, SUCCEEDED, STEP_FAILED = "saga.started", "saga.step.succeeded", "saga.step.failed"
COMPENSATING, COMPLETED = "saga.compensating", "saga.completed"
COMPENSATED, FAILED, ABORTED = "saga.compensated", "saga.failed", "saga.aborted"


def scripted(definition: SagaDefinition, script: dict[str, Answer | list[Answer]]) -> SagaTestKit:
    """A kit whose participants answer in turn; the last answer of a list repeats forever."""
    kit = SagaTestKit(definition)
    for command, answers in script.items():
        answers = answers if isinstance(answers, list) else [answers]
        for n, answer in enumerate(answers):
            times = None if n == len(answers) - 1 else 1
            participant = kit.on(command)
            if answer is None:
                participant.silence(times=times)
            elif isinstance(answer, tuple):
                participant.reply(answer[0], answer[1], times=times)
            else:
                participant.reply(answer, times=times)
    return kit


#: Every participant says yes.
ALL_OK: dict[str, Answer | list[Answer]] = {
    RESERVE: RESERVED,
    CHARGE: CHARGED,
    SHIP: SCHEDULED,
    INVOICE: INVOICED,
    NOTIFY: NOTIFIED,
    RELEASE: RELEASED,
    REFUND: REFUNDED,
}
_BY_STEP = {
    "reserve": RESERVE,
    "charge": CHARGE,
    "ship": SHIP,
    "invoice": INVOICE,
    "notify": NOTIFY,
    "release": RELEASE,
    "refund": REFUND,
}


def ok_except(**overrides: Answer | list[Answer]) -> dict[str, Answer | list[Answer]]:
    """`ALL_OK` with some participants answering otherwise, named by step (or undo)."""
    return {**ALL_OK, **{_BY_STEP[k]: v for k, v in overrides.items()}}
