"""Choreography: services act on each other's events; the saga watches and only undoes."""

from __future__ import annotations

from dataclasses import asdict

from saga_fixtures import (
    CHARGED,
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    DECLINED,
    REFUND,
    REFUNDED,
    REJECTED,
    RELEASE,
    RELEASED,
    RESERVED,
    SCHEDULED,
    SHIP_FAILED,
    STARTED,
    STEP_FAILED,
    SUCCEEDED,
    choreographed,
)

from sagas.messages import Outcome
from sagas.state import StepStatus
from sagas.testing import SagaProbe, SagaTestKit

TERMINAL = {COMPLETED, COMPENSATED, "saga.failed", "saga.aborted"}


def kit_with_undos() -> SagaTestKit:
    kit = SagaTestKit(choreographed())
    kit.on(RELEASE).reply(RELEASED)
    kit.on(REFUND).reply(REFUNDED)
    return kit


def terminal_events(saga: SagaProbe) -> list[str]:
    return [t for t in saga.lifecycle_types if t in TERMINAL]


def test_happy_path_from_published_events_sends_nothing() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1", {"order_id": "o-1"})

    for type_, data in [
        (RESERVED, {"reservation": "r-1"}),
        (CHARGED, {"payment_id": "p-1"}),
        (SCHEDULED, {}),
    ]:
        assert kit.publish("o-1", type_, data) is Outcome.APPLIED
    saga.expect_status("completed").expect_commands()
    assert saga.lifecycle_types == [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, COMPLETED]
    assert saga.state.context == {"order_id": "o-1", "reservation": "r-1", "payment_id": "p-1"}


def test_events_out_of_order_still_complete() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1")

    kit.publish("o-1", CHARGED)  # payment was faster than inventory
    saga.expect_status("running")
    kit.publish("o-1", RESERVED)
    kit.publish("o-1", SCHEDULED)
    saga.expect_status("completed").expect_commands()


def test_duplicate_event_is_counted_not_applied() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1")
    kit.publish("o-1", RESERVED)
    before = asdict(saga.state)

    assert kit.publish("o-1", RESERVED) is Outcome.DUPLICATE
    assert asdict(saga.state) == before


def test_failure_event_sends_the_compensations() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1")

    kit.publish("o-1", RESERVED)
    kit.publish("o-1", CHARGED)
    kit.publish("o-1", SHIP_FAILED)
    saga.expect_status("compensated").expect_commands(REFUND, RELEASE)
    assert saga.lifecycle_types == [
        STARTED,
        SUCCEEDED,
        SUCCEEDED,
        STEP_FAILED,
        COMPENSATING,
        COMPENSATED,
    ]


def test_early_failure_event_is_acted_on_when_its_stage_comes() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1")

    kit.publish("o-1", DECLINED)  # payment said no before inventory said anything
    saga.expect_status("running")
    kit.publish("o-1", RESERVED)
    saga.expect_status("compensated").expect_commands(RELEASE)


def test_timeout_compensates_what_succeeded_and_what_is_in_doubt() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1")
    kit.publish("o-1", RESERVED)

    kit.advance(5.5)  # payment said nothing within 5 s
    saga.expect_status("compensated").expect_commands(REFUND, RELEASE)
    assert saga.state.steps[1].status is StepStatus.COMPENSATED


def test_success_after_the_saga_compensated_gets_its_compensation() -> None:
    kit = kit_with_undos()
    saga = kit.start("o-1")
    kit.publish("o-1", REJECTED)
    saga.expect_status("compensated").expect_commands()

    # The payment service charged anyway: the saga refunds it, and stays compensated.
    assert kit.publish("o-1", CHARGED, {"payment_id": "p-1"}) is Outcome.APPLIED
    saga.expect_status("compensated").expect_commands(REFUND)
    assert saga.commands[-1].data["payment_id"] == "p-1"
    assert saga.state.steps[1].status is StepStatus.COMPENSATED
    assert terminal_events(saga) == [COMPENSATED]

    # Only once: the same event again changes nothing.
    assert kit.publish("o-1", CHARGED, {"payment_id": "p-1"}) is Outcome.DUPLICATE
    saga.expect_commands(REFUND)


def test_success_while_compensating_joins_the_compensation() -> None:
    kit = SagaTestKit(choreographed())  # undos are answered by hand
    saga = kit.start("o-1")
    kit.publish("o-1", DECLINED)
    kit.publish("o-1", RESERVED)
    saga.expect_status("compensating").expect_commands(RELEASE)

    # The payment service changed its mind and charged: refund it now, in parallel.
    assert kit.publish("o-1", CHARGED) is Outcome.APPLIED
    saga.expect_commands(RELEASE, REFUND)
    saga.reply(RELEASED, to=RELEASE)
    saga.expect_status("compensating")  # the saga waits for the refund too
    saga.reply(REFUNDED, to=REFUND)
    saga.expect_status("compensated")


def test_late_success_of_a_step_without_undo_is_told_and_sends_nothing() -> None:
    kit = SagaTestKit(choreographed())
    kit.on(RELEASE).reply(RELEASED)
    saga = kit.start("o-1")
    kit.publish("o-1", RESERVED)
    kit.publish("o-1", CHARGED)
    kit.publish("o-1", SHIP_FAILED)
    saga.expect_status("compensating").expect_commands(REFUND)

    assert kit.publish("o-1", SCHEDULED) is Outcome.APPLIED
    told = [e for e in kit.lifecycle if e.sagaid == "o-1"][-1]
    assert (told.type, told.data["step"], told.data["action"]) == (
        "saga.step.late_succeeded",
        "ship",
        "nothing_to_undo",
    )
    saga.reply(REFUNDED, to=REFUND)
    saga.expect_status("compensated").expect_commands(REFUND, RELEASE)
