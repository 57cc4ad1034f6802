"""A builder that reads like the business process and produces a `SagaDefinition`.

order_saga = (
    saga("order", version=1)
    .triggered_by("order.placed", topic="orders")
    .step("reserve_inventory")
        .command("inventory.reserve", topic="inventory.commands")
        .replies("inventory.replies", success="inventory.reserved", failure="inventory.rejected")
        .compensate("inventory.release", topic="inventory.commands", success="inventory.released")
        .timeout(5)
    .step("authorize_payment")
        ...
    .build()
)
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sagas.definition import COMPENSATION_TIMEOUT, SagaDefinition
from sagas.errors import DefinitionError
from sagas.retry import RetryPolicy


def _types(value: str | tuple[str, ...] | list[str] | tuple[()]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class StepBuilder:
    def __init__(self, parent: SagaBuilder, name: str) -> None:
        self._parent = parent
        self._spec: dict[str, Any] = {"name": name}

    def command(self, type_: str, *, topic: str) -> StepBuilder:
        self._spec["command"] = {"type": type_, "topic": topic}
        return self

    def observes(
        self,
        topic: str,
        *,
        success: str | list[str],
        failure: str | list[str] | tuple[()] = (),
    ) -> StepBuilder:
        self._spec.update(observes=topic, success=_types(success), failure=_types(failure))
        return self

    def replies(
        self,
        topic: str,
        *,
        success: str | list[str],
        failure: str | list[str] | tuple[()] = (),
    ) -> StepBuilder:
        self._spec.update(reply_topic=topic, success=_types(success), failure=_types(failure))
        return self

    def compensate(
        self,
        type_: str,
        *,
        topic: str,
        success: str | list[str],
        failure: str | list[str] | tuple[()] = (),
        reply_topic: str | None = None,
        timeout: float = COMPENSATION_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> StepBuilder:
        comp: dict[str, Any] = {
            "type": type_,
            "topic": topic,
            "success": _types(success),
            "failure": _types(failure),
            "reply_topic": reply_topic,
            "timeout": timeout,
        }
        if retry is not None:
            comp["retry"] = retry
        self._spec["compensation"] = comp
        return self

    def timeout(self, seconds: float) -> StepBuilder:
        self._spec["timeout"] = seconds
        return self

    def retry(
        self, attempts: int, *, initial: float = 0.2, multiplier: float = 2.0, maximum: float = 30.0
    ) -> StepBuilder:
        self._spec["retry"] = RetryPolicy(
            attempts=attempts, initial=initial, multiplier=multiplier, maximum=maximum
        )
        return self

    def pivot(self) -> StepBuilder:
        self._spec["pivot"] = True
        return self

    def in_group(self, group: str) -> StepBuilder:
        self._spec["group"] = group
        return self

    def in_doubt_needs_no_compensation(self) -> StepBuilder:
        self._spec["compensate_in_doubt"] = False
        return self

    # Continue with the saga.
    def step(self, name: str) -> StepBuilder:
        return self._parent.step(name)

    def build(self) -> SagaDefinition:
        return self._parent.build()


class SagaBuilder:
    def __init__(self, name: str, version: int = 1) -> None:
        self._spec: dict[str, Any] = {"name": name, "version": version}
        self._steps: list[StepBuilder] = []

    def triggered_by(self, type_: str, *, topic: str) -> SagaBuilder:
        self._spec["trigger"] = {"type": type_, "topic": topic}
        return self

    def parallel_compensation(self) -> SagaBuilder:
        self._spec["compensation"] = "parallel"
        return self

    def step(self, name: str) -> StepBuilder:
        builder = StepBuilder(self, name)
        self._steps.append(builder)
        return builder

    def build(self) -> SagaDefinition:
        spec = {**self._spec, "steps": [s._spec for s in self._steps]}
        return definition_from_dict(spec)


def saga(name: str, version: int = 1) -> SagaBuilder:
    return SagaBuilder(name, version)


def definition_from_dict(spec: dict[str, Any]) -> SagaDefinition:
    """Validate a plain dict into a definition; errors name the saga, step and field."""
    try:
        return SagaDefinition.model_validate(spec)
    except ValidationError as exc:
        raise DefinitionError(_explain(spec, exc)) from None


def _explain(spec: dict[str, Any], exc: ValidationError) -> str:
    name = spec.get("name", "<unnamed>")
    lines = [f"invalid saga definition {name!r}:"]
    steps = spec.get("steps")
    steps = steps if isinstance(steps, list) else []
    errors = exc.errors()
    step_errors = any(len(e["loc"]) >= 2 and e["loc"][0] == "steps" for e in errors)
    for err in errors:
        loc = list(err["loc"])
        if step_errors and loc == ["steps"] and err["type"] == "too_short":
            # pydantic counts only the steps that validated; the step errors say what is wrong.
            continue
        where = ".".join(str(p) for p in loc) or "(saga)"
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and loc[1] < len(steps):
            entry = steps[loc[1]]
            step_name = entry.get("name", f"#{loc[1]}") if isinstance(entry, dict) else f"#{loc[1]}"
            field = ".".join(str(p) for p in loc[2:]) or "(step)"
            where = f"step {step_name!r} field {field}"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)
