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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.topics import TopicName
from sagas.errors import DefinitionError
from sagas.retry import NO_RETRY, RetryPolicy
from sagas.step_kinds import Awaits, Condition, parse_duration, steps_named

#: Longest step or compensation timeout a definition may set: 30 days. Deadlines are
#: absolute times in the saga state; a larger one (``1e308``) overflowed when a status
#: was rendered (HTTP 500).
MAX_TIMEOUT = 30 * 24 * 3600.0
#: A step's deadline per attempt when its definition gives none: no step waits for ever
#: (a participant that never answers is timed out, retried per the step's policy, and the
#: saga compensates). A compensation's default is `COMPENSATION_TIMEOUT`.
STEP_TIMEOUT = 30.0
COMPENSATION_TIMEOUT = 10.0


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
    timeout: float = Field(
        default=COMPENSATION_TIMEOUT, gt=0, le=MAX_TIMEOUT, description="Seconds per attempt."
    )
    retry: RetryPolicy = RetryPolicy(attempts=5)


class Step(_Frozen):
    """One step: orchestrated (``command``), choreographed (``observes``) or waiting for a
    signal from outside (``awaits``, `sagas.step_kinds`); ``when`` makes it conditional."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    command: CommandSpec | None = None
    observes: TopicName | None = Field(
        default=None, description="Topic the participant publishes on."
    )
    awaits: Awaits | None = None
    when: Condition | None = Field(
        default=None, description="JMESPath condition on the context; false: step skipped."
    )
    reply_topic: TopicName | None = None
    success: tuple[str, ...] = Field(min_length=1)
    failure: tuple[str, ...] = ()
    compensation: Compensation | None = None
    timeout: float = Field(
        default=STEP_TIMEOUT, gt=0, le=MAX_TIMEOUT, description="Seconds per attempt."
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

    @model_validator(mode="before")
    @classmethod
    def _outcomes_of_awaits(cls, data: Any) -> Any:
        """A waiting step's success, failure and deadline are those of its signal."""
        awaits = data.get("awaits") if isinstance(data, dict) else None
        if isinstance(awaits, Awaits):
            awaits = awaits.model_dump()
        if not isinstance(awaits, dict):
            return data
        success = [awaits["type"]] if isinstance(awaits.get("type"), str) else []
        derived = {
            "success": success + list(awaits.get("also") or ()),
            "failure": list(awaits.get("failure") or ()),
            "timeout": parse_duration(awaits.get("deadline")),
        }
        # A dumped definition repeats them; anything else would contradict 'awaits'.
        given = [
            f
            for f, value in derived.items()
            if data.get(f) not in (None, [], ())
            and (list(data[f]) if f != "timeout" else data[f]) != value
        ]
        if given:
            raise ValueError(
                f"step {data.get('name')!r}: a step that awaits a signal takes its outcomes "
                f"and deadline from 'awaits' (type, also, failure, deadline); remove {given}"
            )
        return {**data, **derived}

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("command", "observes", "awaits") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"step {self.name!r}: give exactly one of 'command' (orchestration), "
                f"'observes' (choreography) or 'awaits' (a signal from outside); got {kinds}"
            )
        if self.awaits is not None and self.compensation is not None:
            raise ValueError(
                f"step {self.name!r}: a step that awaits a signal has no effect to undo; "
                f"remove its 'compensation'"
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
        if self.awaits is not None:
            return self.awaits.topic
        return self.observes or self.reply_topic or ""

    def settled_by(self, event_type: str) -> bool:
        """Is ``event_type`` one of this step's outcomes (success or failure)?"""
        return event_type in self.success or event_type in self.failure


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
        self._check_branches()
        return self

    def _check_branches(self) -> None:
        """``when`` reads only steps that run before it; a deadline fallback jumps forward,
        out of no parallel group and never over the pivot."""
        known = [s.name for s in self.steps]
        stage = {s.name: k for s, k in zip(self.steps, self.stage_of, strict=True)}
        for i, step in enumerate(self.steps):
            where = f"saga {self.name!r} step {step.name!r}"
            if step.when is not None:
                if step.pivot:
                    raise ValueError(
                        f"{where} field when: the pivot decides go/no-go and cannot be "
                        f"conditional; put the condition on the steps around it"
                    )
                for ref in sorted(steps_named(step.when)):
                    if ref not in stage:
                        raise ValueError(
                            f"{where} field when: names unknown step {ref!r} "
                            f"(steps.{ref}); its steps: {', '.join(known)}"
                        )
                    if stage[ref] >= self.stage_of[i]:
                        raise ValueError(
                            f"{where} field when: reads step {ref!r}, which does not finish "
                            f"before this step starts"
                        )
            target = step.awaits.fallback if step.awaits is not None else None
            if target is None:
                continue
            field = f"{where} field awaits.on_deadline.continue_at"
            if target not in stage:
                raise ValueError(f"{field}: unknown step {target!r}; its steps: {', '.join(known)}")
            if stage[target] <= self.stage_of[i]:
                raise ValueError(f"{field}: step {target!r} does not come after this step")
            if step.group is not None:
                raise ValueError(f"{field}: a step in a parallel group cannot jump ahead")
            pivot = self.pivot_index
            if pivot is not None and i < pivot < known.index(target):
                raise ValueError(
                    f"{field}: jumping to {target!r} would skip the pivot "
                    f"{self.steps[pivot].name!r}"
                )

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
                "awaits.topic": step.awaits.topic if step.awaits else None,
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
