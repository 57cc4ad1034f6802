"""Conditional steps (`when:`, issue 20): taken, skipped, never compensated, refused at load."""

from __future__ import annotations

from typing import Any

import pytest

from sagas.builder import definition_from_dict
from sagas.definition import SagaDefinition
from sagas.errors import DefinitionError
from sagas.testing import SagaTestKit


def command_step(name: str, *, when: str | None = None, undo: bool = True) -> dict[str, Any]:
    step: dict[str, Any] = {
        "name": name,
        "command": {"type": f"{name}.do", "topic": "work.commands"},
        "reply_topic": "work.replies",
        "success": [f"{name}.done"],
        "failure": [f"{name}.refused"],
        "timeout": 5,
    }
    if undo:
        step["compensation"] = {
            "type": f"{name}.undo",
            "topic": "work.commands",
            "success": [f"{name}.undone"],
        }
    if when is not None:
        step["when"] = when
    return step


def review_saga(*steps: dict[str, Any]) -> SagaDefinition:
    return definition_from_dict({"name": "review", "steps": list(steps)})


SAGA = review_saga(
    command_step("assess"),
    command_step("review", when="amount > `1000` || confidence < `0.8`"),
    command_step("pay", undo=False),
)


def kit_answering(pay: str = "pay.done") -> SagaTestKit:
    kit = SagaTestKit(SAGA)
    kit.on("assess.do").respond(lambda cmd: ("assess.done", {"confidence": 0.95}))
    kit.on("review.do").reply("review.done", {"reviewer": "ann"})
    kit.on("pay.do").reply(pay)
    for name in ("assess", "review"):
        kit.on(f"{name}.undo").reply(f"{name}.undone")
    return kit


def test_a_true_condition_runs_the_step() -> None:
    saga = kit_answering().start("c-1", {"amount": 5000})
    saga.expect_status("completed").expect_commands("assess.do", "review.do", "pay.do")
    assert saga.state.context["reviewer"] == "ann"


def test_a_false_condition_skips_the_step_in_state_history_and_lifecycle() -> None:
    saga = kit_answering().start("c-2", {"amount": 50})
    saga.expect_status("completed").expect_commands("assess.do", "pay.do")
    assert saga.state.steps[1].status.value == "skipped"
    assert "saga.step.skipped" in saga.lifecycle_types
    skipped = [e for e in saga.kit.lifecycle if e.type == "saga.step.skipped"][0]
    assert skipped.data["step"] == "review"
    assert skipped.data["when"] == "amount > `1000` || confidence < `0.8`"
    assert any(h.event == "saga.step.skipped" and h.step == "review" for h in saga.state.history)


def test_the_condition_reads_replies_of_earlier_steps() -> None:
    kit = kit_answering()
    kit.on("assess.do").respond(lambda cmd: ("assess.done", {"confidence": 0.4}))
    saga = kit.start("c-3", {"amount": 50})
    saga.expect_commands("assess.do", "review.do", "pay.do")


def test_a_skipped_step_is_never_compensated() -> None:
    saga = kit_answering(pay="pay.refused").start("c-4", {"amount": 50})
    saga.expect_status("compensated")
    saga.expect_commands("assess.do", "pay.do", "assess.undo")
    assert saga.state.steps[1].status.value == "skipped"


def test_the_condition_may_read_earlier_steps_outcomes() -> None:
    definition = review_saga(
        command_step("assess"),
        command_step("second", when="steps.assess.outcome == 'assess.done'"),
        command_step("third", when="steps.second.status == 'succeeded' && missing"),
    )
    kit = SagaTestKit(definition)
    for name in ("assess", "second", "third"):
        kit.on(f"{name}.do").reply(f"{name}.done")
    saga = kit.start("c-5", {})
    saga.expect_status("completed").expect_commands("assess.do", "second.do")


def test_a_stage_whose_steps_are_all_skipped_lets_the_saga_go_on() -> None:
    definition = review_saga(
        command_step("assess"),
        {**command_step("left", when="`false`"), "group": "g"},
        {**command_step("right", when="`false`"), "group": "g"},
        command_step("pay"),
    )
    kit = SagaTestKit(definition)
    for name in ("assess", "pay"):
        kit.on(f"{name}.do").reply(f"{name}.done")
    kit.start("c-6").expect_status("completed").expect_commands("assess.do", "pay.do")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("amount >", r"step 'review' field when: .*not a valid JMESPath expression"),
        ("steps.nosuch.outcome == 'x'", r"step 'review' field when: names unknown step 'nosuch'"),
        ("steps.pay.status == 'succeeded'", r"step 'review' field when: reads step 'pay'"),
        ("steps.review.status == 'x'", r"step 'review' field when: reads step 'review'"),
    ],
)
def test_bad_conditions_are_refused_at_load_naming_step_and_field(when: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        review_saga(command_step("assess"), command_step("review", when=when), command_step("pay"))


def test_the_pivot_cannot_be_conditional() -> None:
    with pytest.raises(DefinitionError, match=r"step 'pay' field when: the pivot"):
        review_saga(command_step("assess"), {**command_step("pay", when="a"), "pivot": True})


def test_the_api_view_shows_the_skipped_step_with_its_condition() -> None:
    from sagas.api import render

    saga = kit_answering().start("c-api", {"amount": 50})
    steps = render.saga_detail(saga.state, SAGA)["steps"]
    review = next(s for s in steps if s["name"] == "review")
    assert (review["status"], review["outcome"]) == ("skipped", "skipped")
    assert review["when"] == "amount > `1000` || confidence < `0.8`"
