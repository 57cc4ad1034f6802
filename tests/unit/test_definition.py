"""Saga definitions: what the builder and the loader accept, and how they say no."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from saga_fixtures import (
    choreographed,
    pivot_then_group,
    three_step,
    with_parallel_group,
    with_pivot,
)

from sagas.builder import definition_from_dict, saga
from sagas.definition import SagaDefinition
from sagas.errors import DefinitionError, UnknownSagaError
from sagas.loader import DefinitionRegistry, load_definitions
from sagas.retry import RetryPolicy


def step(name: str, **extra: Any) -> dict[str, Any]:
    """An orchestrated step as plain data, with everything required filled in."""
    spec: dict[str, Any] = {
        "name": name,
        "command": {"type": f"{name}.do", "topic": f"{name}.commands"},
        "reply_topic": f"{name}.replies",
        "success": [f"{name}.done"],
        "failure": [f"{name}.refused"],
    }
    spec.update(extra)
    return spec


UNDO = {"type": "x.undo", "topic": "x.commands", "success": ["x.undone"]}


def rejected(spec: dict[str, Any]) -> str:
    with pytest.raises(DefinitionError) as info:
        definition_from_dict(spec)
    return str(info.value)


# -- what a definition is ---------------------------------------------------------------


def test_builder_produces_stages_pivot_and_topics() -> None:
    d = with_parallel_group()
    assert d.stages == ((0, 1), (2,))
    assert d.pivot_index is None
    assert three_step(pivot_last=True).pivot_index == 2
    assert pivot_then_group().stages == ((0,), (1,), (2, 3))
    assert d.topics_read() == {"inventory.replies", "payment.replies", "shipping.replies"}
    assert d.topics_written() == {"inventory.commands", "payment.commands", "shipping.commands"}
    assert three_step().topics_read() == {
        "orders",
        "inventory.replies",
        "payment.replies",
        "shipping.replies",
    }
    assert choreographed().topics_read() == {
        "orders",
        "inventory.events",
        "payment.events",
        "shipping.events",
    }


def test_a_group_separated_by_another_group_is_two_stages_only_if_names_differ() -> None:
    d = definition_from_dict(
        {
            "name": "g",
            "steps": [
                step("a", group="one"),
                step("b", group="one"),
                step("c", group="two"),
                step("d", group="two"),
                step("e"),
            ],
        }
    )
    assert d.stages == ((0, 1), (2, 3), (4,))


def test_step_index_names_the_known_steps() -> None:
    with pytest.raises(DefinitionError, match="no step 'pay'.*reserve, charge, ship"):
        three_step().step_index("pay")


def test_retry_policy_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=4, initial=0.5, multiplier=3, maximum=2)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [0.5, 1.5, 2]
    assert [policy.allows_another(n) for n in (1, 3, 4)] == [True, True, False]
    with pytest.raises(ValueError):
        policy.backoff(0)


# -- what is rejected, and how it is said -----------------------------------------------


def test_duplicate_step_name() -> None:
    message = rejected({"name": "order", "steps": [step("pay"), step("pay")]})
    assert "duplicate step name 'pay'" in message
    assert "order" in message


def test_compensation_at_and_after_the_pivot_is_accepted_for_late_effects() -> None:
    # Sent only for an effect that came after the saga gave up (issue 22), never to undo
    # a pivot that succeeded in its turn.
    d = definition_from_dict(
        {
            "name": "o",
            "steps": [
                step("a", compensation=UNDO),
                step("b", pivot=True, compensation=UNDO),
                step("c", compensation=UNDO),
            ],
        }
    )
    assert d.pivot_index == 1


def test_compensation_before_the_pivot_is_fine() -> None:
    d = definition_from_dict(
        {
            "name": "o",
            "steps": [
                step("a", compensation=UNDO),
                step("b", pivot=True),
                step("c"),
            ],
        }
    )
    assert d.pivot_index == 1


def test_two_pivots() -> None:
    message = rejected({"name": "o", "steps": [step("a", pivot=True), step("b", pivot=True)]})
    assert "only one pivot" in message and "'a'" in message and "'b'" in message


def test_pivot_in_a_group() -> None:
    message = rejected(
        {
            "name": "o",
            "steps": [
                step("a", group="g"),
                step("b", group="g", pivot=True),
            ],
        }
    )
    assert "pivot step 'b' cannot be in a parallel group" in message


@pytest.mark.parametrize("groups", [["g", None, "g"], ["g", "h", "g"]])
def test_non_adjacent_group(groups: list[str | None]) -> None:
    steps = [step(n, group=g) for n, g in zip("abc", groups, strict=True)]
    message = rejected({"name": "o", "steps": steps})
    assert "steps of group 'g' must be adjacent" in message
    assert "step 'c'" in message


def test_step_with_both_command_and_observes() -> None:
    message = rejected({"name": "o", "steps": [step("pay", observes="payment.events")]})
    assert "step 'pay'" in message
    assert "exactly one of 'command'" in message


def test_step_with_neither_command_nor_observes() -> None:
    message = rejected(
        {
            "name": "o",
            "steps": [
                {"name": "pay", "success": ["payment.done"]},
            ],
        }
    )
    assert "step 'pay'" in message and "exactly one of" in message


def test_missing_reply_topic() -> None:
    spec = step("pay")
    del spec["reply_topic"]
    message = rejected({"name": "o", "steps": [spec]})
    assert "step 'pay'" in message and "reply_topic" in message


def test_type_both_success_and_failure() -> None:
    message = rejected({"name": "o", "steps": [step("pay", failure=["pay.done"])]})
    assert "both success and failure" in message


def test_builder_reports_the_same_errors() -> None:
    with pytest.raises(DefinitionError, match="step 'pay' field success: Field required"):
        saga("o").step("pay").command("payment.charge", topic="payment.commands").build()
    with pytest.raises(DefinitionError, match="duplicate step name 'pay'"):
        (
            saga("o")
            .step("pay")
            .observes("p.events", success="p.done")
            .step("pay")
            .observes("p.events", success="p.done")
            .build()
        )


def test_malformed_steps_are_reported_not_crashed_on() -> None:
    assert "step '#0'" in rejected({"name": "o", "steps": ["pay"]})
    assert "steps" in rejected({"name": "o", "steps": "pay"})
    assert "steps" in rejected({"name": "o", "steps": []})


def test_one_bad_field_reports_only_that_field() -> None:
    message = rejected({"name": "o", "steps": [step("pay", timeout="soon")]})
    assert message.count("\n  - ") == 1, message
    assert "step 'pay' field timeout" in message


def test_unknown_topic_via_check_topics() -> None:
    d = three_step()
    known = d.topics_read() | d.topics_written()
    d.check_topics(known)  # every topic known: fine

    with pytest.raises(DefinitionError) as info:
        d.check_topics(known - {"payment.commands"})
    message = str(info.value)
    assert "step 'charge'" in message
    assert "command.topic" in message
    assert "'payment.commands'" in message


def test_unknown_topic_of_a_compensation_is_named() -> None:
    d = three_step()
    known = (d.topics_read() | d.topics_written()) - {"inventory.commands"}
    with pytest.raises(DefinitionError, match="step 'reserve': command.topic"):
        d.check_topics(known)


# -- YAML and JSON ----------------------------------------------------------------------

ORDER_YAML = """
name: order
version: 1
trigger: {type: order.placed, topic: orders}
steps:
  - name: reserve
    command: {type: inventory.reserve, topic: inventory.commands}
    reply_topic: inventory.replies
    success: [inventory.reserved]
    failure: [inventory.rejected]
    compensation:
      type: inventory.release
      topic: inventory.commands
      success: [inventory.released]
      failure: [inventory.release_failed]
      timeout: 2.0
      retry: {attempts: 3, initial: 0.5}
    timeout: 5
    retry: {attempts: 1, initial: 0.1}
  - name: charge
    command: {type: payment.charge, topic: payment.commands}
    reply_topic: payment.replies
    success: [payment.charged]
    failure: [payment.declined]
    compensation:
      type: payment.refund
      topic: payment.commands
      success: [payment.refunded]
      failure: [payment.refund_failed]
      timeout: 2.0
      retry: {attempts: 3, initial: 0.5}
    timeout: 5
    retry: {attempts: 1, initial: 0.1}
  - name: ship
    command: {type: shipping.schedule, topic: shipping.commands}
    reply_topic: shipping.replies
    success: [shipping.scheduled]
    failure: [shipping.failed]
    timeout: 5
    pivot: true
    retry: {attempts: 3, initial: 0.1}
"""


def test_yaml_gives_the_same_model_as_the_builder(tmp_path: Path) -> None:
    file = tmp_path / "order.yaml"
    file.write_text(ORDER_YAML)

    assert load_definitions(file) == [three_step(pivot_last=True)]


@pytest.mark.parametrize(
    "make",
    [
        three_step,
        with_pivot,
        with_parallel_group,
        choreographed,
        pivot_then_group,
        lambda: three_step(parallel_comp=True),
    ],
)
def test_every_definition_survives_a_yaml_and_json_round_trip(make: Any, tmp_path: Path) -> None:
    d: SagaDefinition = make()
    data = d.model_dump(mode="json")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "d.json").write_bytes(orjson.dumps(data))

    assert load_definitions(tmp_path / "d.yaml") == [d]
    assert load_definitions(tmp_path / "d.json") == [d]


def test_several_sagas_in_one_file(tmp_path: Path) -> None:
    defs = [three_step().model_dump(mode="json"), with_pivot().model_dump(mode="json")]
    file = tmp_path / "all.yaml"
    file.write_text(yaml.safe_dump({"sagas": defs}))

    assert [d.name for d in load_definitions(file)] == ["order", "order-pivot"]

    file.write_text(yaml.safe_dump({"sagas": [defs[0], defs[0]]}))
    with pytest.raises(DefinitionError, match="saga defined twice"):
        load_definitions(file)


def test_a_folder_is_every_yaml_yml_and_json_file_in_it(tmp_path: Path) -> None:
    """``--definitions DIR`` (issue 17): files in name order, other files and subfolders
    and hidden files left alone."""
    (tmp_path / "b.yml").write_text(yaml.safe_dump(with_pivot().model_dump(mode="json")))
    (tmp_path / "a.json").write_bytes(orjson.dumps(three_step().model_dump(mode="json")))
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({"sagas": [choreographed().model_dump(mode="json")]})
    )
    (tmp_path / "notes.txt").write_text("not a definition")
    (tmp_path / ".#a.yaml").write_text("{broken")  # an editor's lock file
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x.yaml").write_text("{broken")

    loaded = load_definitions(tmp_path)
    assert loaded == [three_step(), with_pivot(), choreographed()]


def test_a_folder_without_definitions_or_defining_a_saga_twice_is_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(DefinitionError, match=r"no \*\.yaml, \*\.yml or \*\.json"):
        load_definitions(tmp_path)
    spec = yaml.safe_dump(three_step().model_dump(mode="json"))
    (tmp_path / "order.yaml").write_text(spec)
    (tmp_path / "order-copy.yml").write_text(spec)
    with pytest.raises(DefinitionError, match="defined in both") as refused:
        load_definitions(tmp_path)
    assert "order-copy.yml" in str(refused.value) and "order.yaml" in str(refused.value)


def test_yaml_error_names_the_file_the_step_and_the_field(tmp_path: Path) -> None:
    file = tmp_path / "order.yaml"
    file.write_text(
        ORDER_YAML.replace(
            "    timeout: 5\n    retry: {attempts: 1, initial: 0.1}\n  - name: ship",
            "    timeout: soon\n    retry: {attempts: 1, initial: 0.1}\n  - name: ship",
        )
    )

    with pytest.raises(DefinitionError) as info:
        load_definitions(file)
    message = str(info.value)
    assert str(file) in message
    assert "step 'charge' field timeout" in message


def test_yaml_error_in_a_nested_field(tmp_path: Path) -> None:
    file = tmp_path / "order.yaml"
    file.write_text(
        ORDER_YAML.replace(
            "retry: {attempts: 3, initial: 0.5}", "retry: {attempts: 0, initial: 0.5}", 1
        )
    )

    where = r"step 'reserve' field compensation\.retry\.attempts"
    with pytest.raises(DefinitionError, match=where):
        load_definitions(file)


def test_loader_checks_topics_when_asked(tmp_path: Path) -> None:
    file = tmp_path / "order.yaml"
    file.write_text(ORDER_YAML)
    d = three_step()
    known = d.topics_read() | d.topics_written()

    assert load_definitions(file, known_topics=known)
    with pytest.raises(DefinitionError, match="unknown topic 'shipping.replies'"):
        load_definitions(file, known_topics=known - {"shipping.replies"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps: [oops", "not valid"),
        ("- just\n- a list\n", "expected a saga mapping"),
        ("", "expected a saga mapping"),
    ],
)
def test_unreadable_files_are_reported(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(DefinitionError, match=expected):
        load_definitions(file)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read saga definitions"):
        load_definitions(tmp_path / "nope.yaml")


# -- registry ---------------------------------------------------------------------------


def test_registry_starts_new_sagas_on_the_newest_version() -> None:
    v1 = three_step()
    v2 = v1.model_copy(update={"version": 2})
    registry = DefinitionRegistry([v1, v2])

    assert registry.get("order") is v2
    assert registry.get("order", 1) is v1
    assert registry.triggers() == {("orders", "order.placed"): v2}
    with pytest.raises(UnknownSagaError, match="order v1, order v2"):
        registry.get("order", 3)
    with pytest.raises(DefinitionError, match="bump the version"):
        registry.add(with_pivot().model_copy(update={"name": "order"}))
