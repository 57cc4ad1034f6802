"""Messages that must change nothing: duplicates, late and unknown replies, stale timers.
And the properties that make re-runs harmless: deterministic ids, a pure decide()."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

from saga_fixtures import (
    CHARGE,
    CHARGED,
    DECLINED,
    REFUND,
    REFUND_FAILED,
    REFUNDED,
    REJECTED,
    RELEASE,
    RELEASED,
    RESERVE,
    RESERVED,
    SHIP,
    SHIP_FAILED,
    ok_except,
    scripted,
    three_step,
)

from events.envelope import CloudEvent
from sagas.machine import command_id, decide
from sagas.messages import (
    Abort,
    Message,
    Observed,
    Outcome,
    Resolve,
    RetryFailed,
    Skip,
    StartSaga,
    TimerFired,
)
from sagas.state import SagaState
from sagas.testing import SagaProbe, SagaTestKit


class Snapshot:
    """What a user could observe of a saga: its state, what it sent, what it announced."""

    def __init__(self, saga: SagaProbe) -> None:
        self.saga = saga
        self.state = asdict(saga.state)
        self.sent = len(saga.kit.sent)
        self.lifecycle = len(saga.kit.lifecycle)

    def unchanged(self) -> bool:
        kit = self.saga.kit
        return (
            asdict(self.saga.state) == self.state
            and len(kit.sent) == self.sent
            and len(kit.lifecycle) == self.lifecycle
        )


def answer(
    kit: SagaTestKit, command: CloudEvent, type_: str, data: dict[str, Any] | None = None
) -> Outcome:
    return kit.deliver(command.sagaid, Observed(command.reply(type_, source="test", data=data)))


def first(saga: SagaProbe, type_: str, n: int = 0) -> CloudEvent:
    return [c for c in saga.commands if c.type == type_][n]


# -- duplicates -------------------------------------------------------------------------


def test_duplicate_success_reply_changes_nothing() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1")
    before = Snapshot(saga)

    assert saga.reply(RESERVED, to=RESERVE) is Outcome.DUPLICATE
    assert before.unchanged()


def test_duplicate_failure_reply_with_a_reason_changes_nothing() -> None:
    kit = scripted(three_step(), ok_except(charge=(DECLINED, {"reason": "card expired"})))
    saga = kit.start("o-1")
    saga.expect_status("compensated")
    before = Snapshot(saga)

    assert saga.reply(DECLINED, {"reason": "card expired"}, to=CHARGE) is Outcome.DUPLICATE
    assert before.unchanged()


def test_duplicate_success_while_compensating_does_not_jump_the_queue() -> None:
    """Reverse order holds: a re-delivered "reserved" must not release the stock early."""
    kit = scripted(three_step(), ok_except(ship=SHIP_FAILED, refund=None))
    saga = kit.start("o-1")
    saga.expect_commands(RESERVE, CHARGE, SHIP, REFUND)
    before = Snapshot(saga)

    assert saga.reply(RESERVED, to=RESERVE) is Outcome.DUPLICATE
    assert before.unchanged()
    saga.reply(REFUNDED, to=REFUND)
    saga.expect_commands(RESERVE, CHARGE, SHIP, REFUND, RELEASE)


def test_duplicate_compensation_reply_changes_nothing() -> None:
    kit = scripted(three_step(), ok_except(ship=SHIP_FAILED, release=None))
    saga = kit.start("o-1")
    before = Snapshot(saga)

    assert saga.reply(REFUNDED, to=REFUND) is Outcome.DUPLICATE
    assert before.unchanged()


def test_starting_a_saga_twice_changes_nothing() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1", {"amount": 10})
    before = Snapshot(saga)

    assert kit.deliver("o-1", StartSaga("o-1", {"amount": 99})) is Outcome.DUPLICATE
    assert before.unchanged()


# -- late -------------------------------------------------------------------------------


def test_a_different_answer_after_the_step_settled_is_late() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1")
    before = Snapshot(saga)

    assert saga.reply(REJECTED, to=RESERVE) is Outcome.LATE
    assert before.unchanged()


def test_success_after_the_timed_out_step_was_compensated_is_compensated_again() -> None:
    kit = scripted(three_step(), ok_except(reserve=None))
    saga = kit.start("o-1")
    kit.advance(30)
    saga.expect_status("compensated").expect_commands(RESERVE, RELEASE)

    # The release may have reached the service before the reserve did its work (always so
    # in a choreography, where there is no command to refuse): a release follows the
    # success, a no-op for a service that had done them in order.
    assert saga.reply(RESERVED, to=RESERVE) is Outcome.APPLIED
    saga.expect_commands(RESERVE, RELEASE, RELEASE)
    assert saga.commands[1].id != saga.commands[2].id
    saga.reply(RELEASED, to=RELEASE)
    saga.expect_status("compensated")
    assert saga.lifecycle_types[-2:] == ["saga.step.late_succeeded", "saga.step.late_compensated"]
    assert saga.reply(RESERVED, to=RESERVE) is Outcome.DUPLICATE


def test_stale_no_from_an_earlier_attempt_waits_for_the_current_one() -> None:
    kit = scripted(three_step(retries=2), ok_except(reserve=None))
    saga = kit.start("o-1")
    kit.advance(5.5)  # attempt 1 timed out, attempt 2 is out
    saga.expect_commands(RESERVE, RESERVE)
    before = Snapshot(saga)

    assert answer(kit, first(saga, RESERVE, 0), REJECTED) is Outcome.LATE
    assert before.unchanged()
    assert answer(kit, first(saga, RESERVE, 1), RESERVED) is Outcome.APPLIED
    saga.expect_status("completed")


def test_stale_no_from_an_earlier_compensation_attempt_waits_for_the_current_one() -> None:
    kit = scripted(three_step(comp_retries=2), ok_except(ship=SHIP_FAILED, refund=None))
    saga = kit.start("o-1")
    kit.advance(2.6)  # refund 1 timed out after 2 s, refund 2 went out 0.5 s later
    saga.expect_commands(RESERVE, CHARGE, SHIP, REFUND, REFUND)
    before = Snapshot(saga)

    assert answer(kit, first(saga, REFUND, 0), REFUND_FAILED) is Outcome.LATE
    assert before.unchanged()
    assert answer(kit, first(saga, REFUND, 1), REFUNDED) is Outcome.APPLIED
    saga.expect_status("compensated").expect_commands(
        RESERVE, CHARGE, SHIP, REFUND, REFUND, RELEASE
    )


def test_no_for_a_compensation_already_waiting_to_be_retried_is_late() -> None:
    kit = scripted(three_step(comp_retries=2), ok_except(ship=SHIP_FAILED, refund=None))
    saga = kit.start("o-1")
    kit.advance(2.1)  # refund 1 timed out; its retry is scheduled, not sent
    saga.expect_commands(RESERVE, CHARGE, SHIP, REFUND)
    before = Snapshot(saga)

    assert answer(kit, first(saga, REFUND, 0), REFUND_FAILED) is Outcome.LATE
    assert before.unchanged()


# -- unknown ----------------------------------------------------------------------------


def test_reply_of_an_unexpected_type_is_unknown() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1")
    before = Snapshot(saga)

    assert saga.reply("payment.exploded", to=CHARGE) is Outcome.UNKNOWN
    assert saga.reply("inventory.exploded", to=RESERVE) is Outcome.UNKNOWN
    assert kit.publish("o-1", "weather.changed") is Outcome.UNKNOWN
    assert before.unchanged()


def test_reply_of_an_unexpected_type_to_a_compensation_is_unknown() -> None:
    kit = scripted(three_step(), ok_except(ship=SHIP_FAILED, refund=None))
    saga = kit.start("o-1")
    before = Snapshot(saga)

    assert saga.reply("payment.confused", to=REFUND) is Outcome.UNKNOWN
    assert before.unchanged()


def test_reply_for_a_saga_that_does_not_exist() -> None:
    kit = scripted(three_step(), ok_except())

    assert kit.publish("ghost", RESERVED) is Outcome.UNKNOWN_SAGA
    assert "ghost" not in kit.states
    assert kit.sent == []

    reply = CloudEvent(id="r", source="test", type=RESERVED, sagaid="ghost", causationid="c")
    decision = decide(three_step(), None, Observed(reply), 0.0)
    assert decision.outcome is Outcome.UNKNOWN_SAGA
    assert decision.state is None and decision.commands == () and decision.lifecycle == ()


# -- timers -----------------------------------------------------------------------------


def test_deadline_of_a_step_that_answered_in_time_is_stale() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1")
    kit.advance(4)
    saga.reply(CHARGED, to=CHARGE)  # ship is answered at once: the saga completes
    saga.expect_status("completed")
    before, decided = Snapshot(saga), len(kit.decisions)

    kit.advance(10)  # the deadlines of reserve, charge and ship come due
    fired = [d.outcome for d in kit.decisions[decided:]]
    assert fired == [Outcome.STALE_TIMER] * 3
    assert before.unchanged()


def test_timer_nobody_armed_is_stale() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1")
    before = Snapshot(saga)

    assert kit.deliver("o-1", TimerFired("no-such-token")) is Outcome.STALE_TIMER
    assert before.unchanged()


# -- context ----------------------------------------------------------------------------


def test_reply_data_is_merged_into_the_context_and_sent_onward() -> None:
    kit = scripted(three_step(), ok_except(reserve=(RESERVED, {"reservation": "r-7"}), ship=None))
    saga = kit.start("o-1", {"order_id": "o-1", "amount": 30})

    assert saga.state.context == {"order_id": "o-1", "amount": 30, "reservation": "r-7"}
    assert first(saga, CHARGE).data == {"order_id": "o-1", "amount": 30, "reservation": "r-7"}


def test_compensation_reply_data_is_merged_too() -> None:
    kit = scripted(
        three_step(), ok_except(ship=SHIP_FAILED, refund=(REFUNDED, {"refund_id": "rf-1"}))
    )
    saga = kit.start("o-1")
    saga.expect_status("compensated")
    assert saga.state.context["refund_id"] == "rf-1"
    assert first(saga, RELEASE).data["refund_id"] == "rf-1"


# -- ids --------------------------------------------------------------------------------


def run_one(saga_id: str) -> SagaProbe:
    kit = scripted(three_step(retries=2), ok_except(reserve=[None, RESERVED], ship=SHIP_FAILED))
    saga = kit.start(saga_id, {"order_id": saga_id})
    kit.advance(60)
    return saga


def test_same_inputs_give_the_same_ids() -> None:
    a, b = run_one("o-1"), run_one("o-1")

    assert [c.id for c in a.commands] == [c.id for c in b.commands]
    assert [e.id for e in a.kit.lifecycle] == [e.id for e in b.kit.lifecycle]
    assert [c.model_dump() for c in a.commands] == [c.model_dump() for c in b.commands]


def test_ids_differ_by_saga_and_by_attempt() -> None:
    a, b = run_one("o-1"), run_one("o-2")
    ids = [c.id for c in a.commands]

    assert a.command_types[:2] == [RESERVE, RESERVE]
    assert len(set(ids)) == len(ids), "a new attempt must carry a new id"
    assert not set(ids) & {c.id for c in b.commands}
    assert ids[0] == command_id("o-1", "reserve", "do", 1)
    assert ids[1] == command_id("o-1", "reserve", "do", 2)
    assert first(a, REFUND).id == command_id("o-1", "charge", "undo", 1)


# -- purity -----------------------------------------------------------------------------


def test_decide_never_mutates_the_state_it_is_given() -> None:
    definition = three_step(retries=2, comp_retries=2)
    messages: list[Message] = []
    state: SagaState | None = None
    now = 1000.0

    def step(message: Message) -> None:
        nonlocal state, now
        before = asdict(state) if state is not None else None
        snapshot = copy.deepcopy(state) if state is not None else None
        decision = decide(definition, state, message, now)
        assert (asdict(state) if state is not None else None) == before
        # Same input, same output: a re-run after a crash decides the same thing.
        again = decide(definition, snapshot, message, now)
        assert again.commands == decision.commands and again.lifecycle == decision.lifecycle
        assert again.timers == decision.timers
        messages.append(message)
        if decision.state is not None:
            state = decision.state
        now += 1

    step(StartSaga("o-1", {"n": 1}))
    assert state is not None
    reserve_id = command_id("o-1", "reserve", "do", 1)
    reserve = CloudEvent(id=reserve_id, source="c", type=RESERVE, sagaid="o-1")
    step(Observed(reserve.reply(RESERVED, "inv", {"reservation": "r"})))
    step(Observed(reserve.reply(RESERVED, "inv", {"reservation": "r"})))  # duplicate
    step(Observed(reserve.reply("inventory.odd", "inv")))  # unknown
    step(TimerFired("gone"))  # stale
    step(Skip("charge", "not failed"))  # rejected
    (deadline,) = state.timers
    step(TimerFired(deadline))  # charge times out -> its retry is scheduled
    (retry,) = state.timers
    step(TimerFired(retry))  # charge attempt 2
    assert state.steps[1].attempt == 2 and state.status.value == "running"
    step(Abort("stop"))
    refund = CloudEvent(
        id=command_id("o-1", "charge", "undo", 1), source="c", type=REFUND, sagaid="o-1"
    )
    step(Observed(refund.reply(REFUND_FAILED, "pay")))
    for token in list(state.timers):
        step(TimerFired(token))
    refund2 = CloudEvent(
        id=command_id("o-1", "charge", "undo", 2), source="c", type=REFUND, sagaid="o-1"
    )
    step(Observed(refund2.reply(REFUND_FAILED, "pay")))
    assert state.status.value == "failed"
    step(Resolve("by hand"))
    assert state.status.value == "aborted"
    step(RetryFailed())  # rejected: nothing is parked any more
    step(Observed(refund2.reply(REFUNDED, "pay")))  # late


def test_data_of_a_late_success_reaches_the_compensation_still_waiting_for_its_turn() -> None:
    from sagas.builder import saga as build

    definition = (
        build("three-way")
        .step("a")
        .in_group("g")
        .command("a.do", topic="a.commands")
        .replies("a.replies", success="a.done", failure="a.no")
        .compensate("a.undo", topic="a.commands", success="a.undone")
        .timeout(5)
        .step("b")
        .in_group("g")
        .command("b.do", topic="b.commands")
        .replies("b.replies", success="b.done", failure="b.no")
        .compensate("b.undo", topic="b.commands", success="b.undone")
        .timeout(5)
        .step("c")
        .in_group("g")
        .command("c.do", topic="c.commands")
        .replies("c.replies", success="c.done", failure="c.no")
        .timeout(5)
        .build()
    )
    kit = SagaTestKit(definition)
    saga = kit.start("s-1")
    saga.reply("c.no", to="c.do")  # a and b are cancelled in doubt: undo b, then a
    assert saga.command_types[-1] == "b.undo"

    assert saga.reply("a.done", {"a_ref": "A-7"}, to="a.do") is Outcome.APPLIED
    saga.reply("b.undone", to="b.undo")

    undo_a = saga.commands[-1]
    assert undo_a.type == "a.undo" and undo_a.data["a_ref"] == "A-7"
    saga.reply("a.undone", to="a.undo")
    saga.expect_status("compensated")
