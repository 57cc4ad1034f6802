"""The test kit itself: scripted participants, virtual time, readable failures."""

from __future__ import annotations

import pytest
from saga_fixtures import (
    CHARGE,
    CHARGED,
    DECLINED,
    REFUND,
    REFUNDED,
    RELEASE,
    RELEASED,
    RESERVE,
    RESERVED,
    SCHEDULED,
    SHIP,
    ok_except,
    scripted,
    three_step,
)

from events.envelope import CloudEvent
from sagas.messages import Outcome
from sagas.testing import SagaTestKit


def test_script_answers_in_turn_then_falls_back_to_its_default() -> None:
    kit = SagaTestKit(three_step(retries=3))
    kit.on(RESERVE).silence(times=2).reply(RESERVED)
    kit.on(CHARGE).reply(CHARGED)
    kit.on(SHIP).reply(SCHEDULED)
    saga = kit.start("o-1")

    kit.advance(30)
    saga.expect_status("completed").expect_commands(RESERVE, RESERVE, RESERVE, CHARGE, SHIP)


def test_respond_sees_the_command() -> None:
    seen: list[CloudEvent] = []

    def reserve(command: CloudEvent) -> tuple[str, dict[str, object]] | None:
        seen.append(command)
        return (RESERVED, {"for": command.data["order_id"]})

    kit = scripted(three_step(), ok_except())
    kit.on(RESERVE).respond(reserve, times=1)
    saga = kit.start("o-1", {"order_id": "o-1"})

    assert [c.type for c in seen] == [RESERVE]
    assert saga.state.context["for"] == "o-1"


def test_unscripted_participants_never_answer_and_time_only_moves_on_advance() -> None:
    kit = SagaTestKit(three_step())
    start = kit.now
    saga = kit.start("o-1")

    saga.expect_status("running").expect_commands(RESERVE)
    assert kit.now == start
    kit.advance(4.9)
    saga.expect_status("running")
    kit.advance(0.1)  # the 5 s deadline falls due
    assert kit.now == start + 5
    saga.expect_status("compensating").expect_commands(RESERVE, RELEASE)


def test_timers_fire_in_due_order_at_their_due_time() -> None:
    kit = SagaTestKit(three_step())
    kit.on(RESERVE).reply(RESERVED)
    kit.on(REFUND).silence(times=1).reply(REFUNDED)
    kit.on(RELEASE).reply(RELEASED)
    start = kit.now
    saga = kit.start("o-1")

    kit.advance(100)
    # The charge's deadline fired at + 5 (first refund); that refund's own 2 s deadline at
    # + 7, and its retry 0.5 s later: each went out at its due time, not at + 100.
    sent_at = [(c.type, c.time.timestamp() - start) for c in saga.commands if c.time]
    assert sent_at == [(RESERVE, 0), (CHARGE, 0), (REFUND, 5), (REFUND, 7.5), (RELEASE, 7.5)]
    assert kit.now == start + 100
    saga.expect_status("compensated")


def test_probe_replies_to_the_last_command_or_the_one_named() -> None:
    kit = SagaTestKit(three_step())
    saga = kit.start("o-1")

    assert saga.reply(RESERVED) is Outcome.APPLIED
    assert saga.reply(DECLINED, to=CHARGE) is Outcome.APPLIED
    saga.expect_commands(RESERVE, CHARGE, RELEASE)
    with pytest.raises(AssertionError, match="no command payment.refund"):
        saga.reply("x", to="payment.refund")


def test_sagas_in_one_kit_are_independent() -> None:
    kit = scripted(three_step(), ok_except(ship=None))
    a = kit.start("o-1")
    b = kit.start("o-2")

    a.reply(SCHEDULED, to=SHIP)
    a.expect_status("completed")
    b.expect_status("running").expect_commands(RESERVE, CHARGE, SHIP)
    assert all(e.sagaid == "o-1" for e in a.commands)


def test_failed_expectations_say_what_happened() -> None:
    saga = scripted(three_step(), ok_except(ship=None)).start("o-1")

    with pytest.raises(AssertionError, match="expected status 'completed', got 'running'.*history"):
        saga.expect_status("completed")
    with pytest.raises(AssertionError, match="got \\['inventory.reserve'"):
        saga.expect_commands(RESERVE)


def test_every_decision_is_kept_for_inspection() -> None:
    kit = scripted(three_step(), ok_except())
    kit.start("o-1")

    assert [d.outcome for d in kit.decisions] == [Outcome.APPLIED] * 4
    assert kit.decisions[-1].state is not None and kit.decisions[-1].state.terminal
