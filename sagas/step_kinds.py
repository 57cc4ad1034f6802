"""What a step may carry beyond a command: a condition (``when:``) and a wait for a person
(``awaits:``), as definition data, checked at load.

Conditions are JMESPath expressions (https://jmespath.org), a small, specified,
side-effect-free query language with implementations in many languages: a
definition never runs Python code. A condition reads one JSON document:

* every key of the saga's context (the trigger's data merged with every reply so far),
* ``steps.<name>.status`` and ``steps.<name>.outcome`` of the steps before it
  (``steps`` is reserved: a context key of that name is hidden).

It is true unless it yields ``false``, ``null``, or an empty string, list or
object (JMESPath's own truthiness: ``0`` is true). Examples::

    when: "amount > `1000` || triage_confidence < `0.8`"
    when: "steps.triage.outcome == 'triage.assessed' && triage_decision != 'approve'"
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from events.topics import TopicName

#: the key of the condition document under which earlier steps are found
STEPS_KEY = "steps"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"48h"`` or ``"2d"``; other values pass
    through for the field's own validation to refuse."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"duration {value!r} is not a number of seconds nor one like '90s', '30m', "
                f"'48h', '2d'"
            )
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


#: seconds, or a string with a unit (s, m, h, d)
Duration = Annotated[float, BeforeValidator(parse_duration)]


@lru_cache(maxsize=1024)
def compile_condition(expression: str) -> ParsedResult:
    """The compiled expression; raises ``ValueError`` saying what is wrong with it."""
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        detail = str(exc).replace("\n", " ")
        raise ValueError(f"not a valid JMESPath expression ({detail})") from None


def _check_condition(expression: str) -> str:
    compile_condition(expression)
    return expression


#: a JMESPath expression, compiled (and so checked) when the definition is built
Condition = Annotated[str, Field(min_length=1), AfterValidator(_check_condition)]


def steps_named(expression: str) -> set[str]:
    """Step names read as ``steps.<name>`` at the root of the condition document."""
    return set(_step_refs(compile_condition(expression).parsed))


def _step_refs(node: dict[str, Any]) -> Iterator[str]:
    children: Sequence[Any] = node.get("children", ())
    if (
        node.get("type") == "subexpression"
        and len(children) >= 2
        and children[0].get("type") == "field"
        and children[0].get("value") == STEPS_KEY
        and children[1].get("type") == "field"
    ):
        yield str(children[1]["value"])
    for child in children:
        if isinstance(child, dict):
            yield from _step_refs(child)


def holds(expression: str, document: dict[str, Any]) -> bool:
    """Is the condition true of ``document`` (JMESPath truthiness)?"""
    result = compile_condition(expression).search(document)
    return result not in (None, False, "", [], {})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContinueAt(_Frozen):
    """At the deadline, the waiting step expires and the saga goes on at this later step;
    the steps in between are skipped."""

    continue_at: str = Field(min_length=1)


class Awaits(_Frozen):
    """A step that waits for a signal from outside (a person's approval, say).

    Any producer may publish the signal on ``topic`` with the saga's id as key and
    ``sagaid``; `sagas signal` and ``POST /sagas/{id}/signal`` send it through the
    coordinator's control topic. ``type`` (or one of ``also``) lets the saga go on and
    its data joins the context; a ``failure`` type fails the step (the saga compensates).
    """

    type: str = Field(min_length=1)
    also: tuple[str, ...] = ()
    failure: tuple[str, ...] = ()
    topic: TopicName
    deadline: Duration = Field(gt=0, description="Seconds, or '90m', '48h', '2d'.")
    on_deadline: Literal["fail"] | ContinueAt = "fail"

    @property
    def success(self) -> tuple[str, ...]:
        return (self.type, *self.also)

    @property
    def fallback(self) -> str | None:
        return self.on_deadline.continue_at if isinstance(self.on_deadline, ContinueAt) else None
