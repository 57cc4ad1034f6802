"""What a saga is: its steps, their messages, deadlines, retries and compensations.

A definition is data before it is code (DESIGN.md, "Saga definitions"): the
same model comes from the Python builder (`sagas.builder`) or from a YAML/JSON
file (`sagas.loader`). Everything a definition can get wrong is rejected here,
at load, with the step and field named: the engine never discovers a bad
definition in the middle of a saga.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.topics import TopicName
from sagas.errors import DefinitionError
from sagas.retry import NO_RETRY, RetryPolicy

#: Longest step or compensation timeout a definition may set: 30 days. Deadlines are
#: absolute times in the saga state; a larger one (``1e308``) overflowed when a status
#: was rendered (HTTP 500).
MAX_TIMEOUT = 30 * 24 * 3600.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CommandSpec(_Frozen):
    """An orchestrated action: the coordinator sends ``type`` to ``topic``."""

    type: str = Field(min_length=1)
    topic: TopicName


class Compensation(_Frozen):
    """The semantic undo of a step, sent when a later step fails or on abort.

    A participant must treat it as idempotent and as a no-op success when the
    original action never took effect (the engine compensates steps whose
    outcome is in doubt: timed out or cancelled while running).

    A step at or after the pivot may have one too. The engine never undoes
    such a step that succeeded in its turn (after the pivot a saga only moves
    forward); it sends the compensation only for an effect nobody wants: a
    success that came after the saga had given up before reaching the step,
    such as a choreographed service reacting to an event that came too late.
    """

    type: str = Field(min_length=1)
    topic: TopicName
    reply_topic: TopicName | None = None
    success: tuple[str, ...] = Field(min_length=1)
    failure: tuple[str, ...] = ()
    timeout: float | None = Field(default=10.0, gt=0, le=MAX_TIMEOUT)
    retry: RetryPolicy = RetryPolicy(attempts=5)


class Step(_Frozen):
    """One step: either orchestrated (``command``) or choreographed (``observes``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    command: CommandSpec | None = None
    observes: TopicName | None = Field(
        default=None, description="Topic the participant publishes on."
    )
    reply_topic: TopicName | None = None
    success: tuple[str, ...] = Field(min_length=1)
    failure: tuple[str, ...] = ()
    compensation: Compensation | None = None
    timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT, description="Seconds per attempt (none: no deadline)."
    )
    retry: RetryPolicy = NO_RETRY
    pivot: bool = False
    group: str | None = Field(
        default=None, description="Adjacent steps sharing a group run in parallel."
    )
    compensate_in_doubt: bool = Field(
        default=True,
        description="Compensate this step when its outcome is unknown (timed out, cancelled).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.command is None) == (self.observes is None):
            raise ValueError(
                f"step {self.name!r}: give exactly one of 'command' (orchestration) "
                f"or 'observes' (choreography)"
            )
        if self.command is not None and self.reply_topic is None:
            raise ValueError(f"step {self.name!r}: an orchestrated step needs 'reply_topic'")
        overlap = set(self.success) & set(self.failure)
        if overlap:
            raise ValueError(
                f"step {self.name!r}: types {sorted(overlap)} are both success and failure"
            )
        return self

    @property
    def listens_on(self) -> str:
        """The topic this step's outcome arrives on."""
        return self.observes or self.reply_topic or ""


class Trigger(_Frozen):
    """What starts a saga: an event type on a topic; the API can always start one too."""

    topic: TopicName
    type: str = Field(min_length=1)


class CompensationOrder(StrEnum):
    REVERSE = "reverse"
    PARALLEL = "parallel"


class SagaDefinition(_Frozen):
    """A named, versioned business process."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    version: int = Field(default=1, ge=1)
    trigger: Trigger | None = None
    steps: tuple[Step, ...] = Field(min_length=1)
    compensation: Literal["reverse", "parallel"] = "reverse"

    @model_validator(mode="after")
    def _check_steps(self) -> SagaDefinition:
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"saga {self.name!r}: duplicate step name {step.name!r}")
            seen.add(step.name)
        pivots = [i for i, s in enumerate(self.steps) if s.pivot]
        if len(pivots) > 1:
            names = [self.steps[i].name for i in pivots]
            raise ValueError(f"saga {self.name!r}: only one pivot step allowed, got {names}")
        for i in pivots:
            if self.steps[i].group is not None:
                raise ValueError(
                    f"saga {self.name!r}: pivot step {self.steps[i].name!r} cannot be in a "
                    f"parallel group"
                )
        groups_closed: set[str] = set()
        previous: str | None = None
        for step in self.steps:
            if step.group is not None and step.group != previous and step.group in groups_closed:
                raise ValueError(
                    f"saga {self.name!r}: steps of group {step.group!r} must be adjacent "
                    f"(step {step.name!r} is separated from the rest of its group)"
                )
            if previous is not None and step.group != previous:
                groups_closed.add(previous)
            previous = step.group
        return self

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    @cached_property
    def stages(self) -> tuple[tuple[int, ...], ...]:
        """Step indexes grouped into stages that run one after another."""
        stages: list[list[int]] = []
        for i, step in enumerate(self.steps):
            if stages and step.group is not None and self.steps[stages[-1][0]].group == step.group:
                stages[-1].append(i)
            else:
                stages.append([i])
        return tuple(tuple(s) for s in stages)

    @cached_property
    def stage_of(self) -> tuple[int, ...]:
        """The stage of each step, by step index."""
        return tuple(k for k, stage in enumerate(self.stages) for _ in stage)

    @cached_property
    def pivot_index(self) -> int | None:
        return next((i for i, s in enumerate(self.steps) if s.pivot), None)

    def step_index(self, name: str) -> int:
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        known = ", ".join(s.name for s in self.steps)
        raise DefinitionError(f"saga {self.name!r} has no step {name!r}; its steps: {known}")

    def topics_read(self) -> set[str]:
        """Every topic the coordinator must consume for this saga."""
        topics = {s.listens_on for s in self.steps}
        topics |= {
            c.reply_topic or s.listens_on for s in self.steps if (c := s.compensation) is not None
        }
        if self.trigger is not None:
            topics.add(self.trigger.topic)
        return topics

    def topics_written(self) -> set[str]:
        out = {s.command.topic for s in self.steps if s.command is not None}
        out |= {s.compensation.topic for s in self.steps if s.compensation is not None}
        return out

    def check_topics(self, known: Iterable[str]) -> None:
        """Reject a definition that names a topic outside ``known``."""
        known_set = set(known)
        for step in self.steps:
            named = {
                "command.topic": step.command.topic if step.command else None,
                "observes": step.observes,
                "reply_topic": step.reply_topic,
                "compensation.topic": step.compensation.topic if step.compensation else None,
                "compensation.reply_topic": (
                    step.compensation.reply_topic if step.compensation else None
                ),
            }
            for field, topic in named.items():
                if topic is not None and topic not in known_set:
                    raise DefinitionError(
                        f"saga {self.name!r} step {step.name!r}: {field} names unknown topic "
                        f"{topic!r}; known topics: {', '.join(sorted(known_set))}"
                    )
