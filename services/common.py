"""What the reference services share: modes, the service spec, reply helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from events.envelope import CloudEvent
from sagas.participants.participant import Handler, Outgoing
from services.late_answers import LateAnswers

S = TypeVar("S")


class Mode(StrEnum):
    """Whether a service answers the coordinator's commands, reacts to events, or both.

    Compensation commands are consumed in every mode: in choreography the
    coordinator still sends them when a saga fails.
    """

    ORCHESTRATED = "orchestrated"
    CHOREOGRAPHY = "choreography"
    BOTH = "both"

    @property
    def reacts(self) -> bool:
        return self is not Mode.ORCHESTRATED


@dataclass(frozen=True)
class ServiceSpec(Generic[S]):
    """Everything `sagas.participants.participant.Participant` needs to run one reference service."""

    name: str
    input_topics: tuple[str, ...]
    output_topics: tuple[str, ...]
    handler: Handler[S]
    initial_state: S
    handles: frozenset[str]
    views: Mapping[str, Callable[[S, Mapping[str, str]], Any]] = field(default_factory=dict)
    late: LateAnswers = LateAnswers()


def answer(
    command: CloudEvent, topic: str, source: str, type_: str, data: dict[str, Any]
) -> Outgoing:
    """The reply to a command: sagaid kept, causationid = the command's id."""
    return Outgoing(topic, command.reply(type_, source, data))


def react(event: CloudEvent, topic: str, source: str, type_: str, data: dict[str, Any]) -> Outgoing:
    """A choreography event caused by ``event``: carries the order along with our result."""
    return Outgoing(topic, event.reply(type_, source, {**event.data, **data}))


def refuse(state: S, type_: str, reason: str, **details: Any) -> tuple[S, str, dict[str, Any]]:
    """A business "no": the state unchanged, a failure type, and the reason a person reads."""
    return state, type_, {"reason": reason, **details}
