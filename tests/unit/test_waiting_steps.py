"""Steps that wait for a person (`awaits:`, issue 20): a signal in time, late, twice, never;
the deadline fails the saga or goes on down a fallback path. Virtual time: days pass in
microseconds."""

from __future__ import annotations

from typing import Any

import pytest

from sagas import control
from sagas.builder import definition_from_dict
from sagas.definition import SagaDefinition
from sagas.errors import DefinitionError
from sagas.messages import Outcome
from sagas.testing import SagaProbe, SagaTestKit

HOUR = 3600.0


def command_step(name: str, *, undo: bool = True) -> dict[str, Any]:
    step: dict[str, Any] = {
        "name": name,
        "command": {"type": f"{name}.do", "topic": "work.commands"},
        "reply_topic": "work.replies",
        "success": [f"{name}.done"],
        "timeout": 5,
    }
    if undo:
        step["compensation"] = {
            "type": f"{name}.undo",
            "topic": "work.commands",
            "success": [f"{name}.undone"],
        }
    return step


def approval(on_deadline: Any = "fail", **extra: Any) -> dict[str, Any]:
    return {
        "name": "approve",
        "awaits": {
            "type": "claim.approved",
            "failure": ["claim.rejected"],
            "topic": "approvals",
            "deadline": "48h",
            "on_deadline": on_deadline,
        },
        **extra,
    }


def claim_saga(on_deadline: Any = "fail") -> SagaDefinition:
    return definition_from_dict(
        {
            "name": "claim",
            "steps": [
                command_step("reserve"),
                approval(on_deadline),
                command_step("pay", undo=False),
                command_step("refer", undo=False),
                command_step("notify", undo=False),
            ],
        }
    )


def started(definition: SagaDefinition, saga_id: str = "c-1") -> SagaProbe:
    kit = SagaTestKit(definition)
    for name in ("reserve", "pay", "refer", "notify"):
        kit.on(f"{name}.do").reply(f"{name}.done")
    kit.on("reserve.undo").reply("reserve.undone")
    saga = kit.start(saga_id, {"amount": 900})
    assert saga.state.steps[1].status.value == "running"
    assert saga.lifecycle_types[-1] == "saga.step.waiting"
    return saga


def signal(saga: SagaProbe, type_: str, data: dict[str, Any] | None = None) -> Outcome:
    return saga.kit.publish(saga.saga_id, type_, data)


def test_a_signal_in_time_lets_the_saga_go_on_with_its_data() -> None:
    saga = started(claim_saga())
    saga.kit.advance(47 * HOUR)
    assert signal(saga, "claim.approved", {"reviewer": "ann"}) is Outcome.APPLIED
    saga.expect_status("completed")
    saga.expect_commands("reserve.do", "pay.do", "refer.do", "notify.do")
    assert saga.state.context["reviewer"] == "ann"


def test_a_rejection_compensates() -> None:
    saga = started(claim_saga())
    assert signal(saga, "claim.rejected", {"reason": "not covered"}) is Outcome.APPLIED
    saga.expect_status("compensated").expect_commands("reserve.do", "reserve.undo")
    assert "claim.rejected: not covered" in (saga.state.failure or "")


def test_no_signal_by_the_deadline_fails_the_step_and_compensates() -> None:
    saga = started(claim_saga())
    saga.kit.advance(48 * HOUR + 1)
    saga.expect_status("compensated").expect_commands("reserve.do", "reserve.undo")
    assert saga.state.steps[1].status.value == "timed_out"


def test_a_late_signal_changes_nothing_and_is_counted_as_ignored() -> None:
    saga = started(claim_saga())
    saga.kit.advance(49 * HOUR)
    before = saga.state
    assert signal(saga, "claim.approved") is Outcome.IGNORED_SIGNAL
    assert saga.state is before
    saga.expect_status("compensated")
    assert "no step waits for it now" in saga.kit.decisions[-1].note


def test_a_second_signal_changes_nothing() -> None:
    saga = started(claim_saga())
    assert signal(saga, "claim.approved") is Outcome.APPLIED
    history = len(saga.state.history)
    assert signal(saga, "claim.rejected") is Outcome.IGNORED_SIGNAL
    assert signal(saga, "claim.approved") is Outcome.IGNORED_SIGNAL
    saga.expect_status("completed")
    assert len(saga.state.history) == history


def test_a_signal_before_the_step_waits_changes_nothing() -> None:
    kit = SagaTestKit(claim_saga())  # reserve never answers: the approval is not asked yet
    saga = kit.start("c-early", {})
    assert signal(saga, "claim.approved") is Outcome.IGNORED_SIGNAL
    assert saga.state.steps[1].status.value == "pending"


def test_the_deadline_can_continue_down_a_fallback_path() -> None:
    saga = started(claim_saga({"continue_at": "refer"}))
    saga.kit.advance(48 * HOUR + 1)
    saga.expect_status("completed").expect_commands("reserve.do", "refer.do", "notify.do")
    statuses = [s.status.value for s in saga.state.steps]
    assert statuses == ["succeeded", "skipped", "skipped", "succeeded", "succeeded"]
    assert "saga.step.expired" in saga.lifecycle_types
    assert signal(saga, "claim.approved") is Outcome.IGNORED_SIGNAL


def test_a_signal_through_the_control_topic_is_the_same_signal() -> None:
    saga = started(claim_saga())
    record = control.signal("c-1", "claim.approved", {"reviewer": "bob"})
    assert saga.kit.deliver("c-1", control.to_message(record)) is Outcome.APPLIED
    saga.expect_status("completed")
    assert saga.state.context["reviewer"] == "bob"


def test_the_coordinator_reads_the_signal_topic() -> None:
    assert "approvals" in claim_saga().topics_read()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"on_deadline": {"continue_at": "nosuch"}}, r"continue_at: unknown step 'nosuch'"),
        ({"on_deadline": {"continue_at": "reserve"}}, r"'reserve' does not come after"),
        ({"deadline": "two days"}, r"duration 'two days'"),
        ({"deadline": "40d"}, r"timeout"),
    ],
)
def test_bad_waits_are_refused_at_load(change: dict[str, Any], message: str) -> None:
    step = approval()
    step["awaits"].update(change)
    spec = {"name": "claim", "steps": [command_step("reserve"), step, command_step("pay")]}
    with pytest.raises(DefinitionError, match=message):
        definition_from_dict(spec)


def test_a_fallback_never_jumps_over_the_pivot() -> None:
    steps = [
        command_step("reserve"),
        approval({"continue_at": "notify"}),
        {**command_step("pay", undo=False), "pivot": True},
        command_step("notify", undo=False),
    ]
    with pytest.raises(DefinitionError, match=r"would skip the pivot 'pay'"):
        definition_from_dict({"name": "claim", "steps": steps})


def test_a_signal_that_reaches_the_saga_before_its_deadline_record_is_in_time() -> None:
    """The deadline is a message through Kafka, ordered with the signals: the clock having
    passed it decides nothing until it is applied (a lagging or failing-over coordinator)."""
    saga = started(claim_saga())
    saga.kit.now += 48 * HOUR + 5  # past the deadline, its timer not yet delivered
    assert signal(saga, "claim.approved", {"approved_by": "ann"}) is Outcome.APPLIED
    saga.kit.advance(1)  # the deadline's record comes now: stale
    saga.expect_status("completed")


def test_the_api_view_shows_what_a_waiting_step_waits_for() -> None:
    from sagas.api import render

    saga = started(claim_saga())
    approve = render.saga_detail(saga.state, saga.kit.definition)["steps"][1]
    assert (approve["kind"], approve["action"], approve["status"]) == (
        "awaits",
        "claim.approved",
        "running",
    )
    assert approve["timeout_seconds"] == 48 * HOUR
