"""Topic names of wire contract v1, with the deployment's prefix applied.

The contract fixes four topics of the engine itself:

- ``saga.lifecycle``  lifecycle events (``saga.started`` ... ``saga.aborted``);
- ``saga.deadletter`` records that could not be decoded or validated, unchanged;
- ``saga.control``    the coordinator's own input: timers and operator commands;
- ``saga.starts``     ``saga.start`` requests of clients (`sagas.client.SagaClient`,
  ``sagas start``) and nothing else, so that admission control can leave them waiting
  in Kafka (the coordinator pauses it at its bound) while ``saga.control`` keeps flowing.

Participants' command and reply topics are named by the saga definitions.
``SAGAS_TOPIC_PREFIX`` is prepended verbatim to every name, so several
deployments (or test runs) can share one cluster: prefix ``"staging."`` gives
``staging.saga.lifecycle``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Protocol

from pydantic import AfterValidator

LIFECYCLE = "saga.lifecycle"
DEADLETTER = "saga.deadletter"
CONTROL = "saga.control"
STARTS = "saga.starts"


class PrefixedSettings(Protocol):
    """What naming a topic needs of the deployment's settings (`KafkaSettings` has it)."""

    @property
    def topic_prefix(self) -> str: ...


#: Kafka's own rule for topic names (kafka.common.internals.Topic): these characters, at
#: most 249 of them, and not "." or "..".
_LEGAL_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}\Z", re.ASCII)


def topic_name_problem(name: str) -> str | None:
    """None for a name Kafka accepts, else what is wrong with it."""
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed by Kafka"
    if not _LEGAL_TOPIC.match(name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        return (
            f"topic name {shown!r} is not valid in Kafka: use 1 to 249 of the characters "
            f"a-z A-Z 0-9 . _ -"
        )
    return None


def _check_topic(name: str) -> str:
    problem = topic_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


#: A field holding a topic name, checked against Kafka's rules.
TopicName = Annotated[str, AfterValidator(_check_topic)]


def topic(name: str, settings: PrefixedSettings) -> str:
    """``name`` with the configured prefix applied."""
    return f"{settings.topic_prefix}{name}"


@dataclass(frozen=True, slots=True)
class Topics:
    """The engine's own topics, fully named for one deployment."""

    lifecycle: str = LIFECYCLE
    deadletter: str = DEADLETTER
    control: str = CONTROL
    starts: str = STARTS

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(
            lifecycle=prefix + LIFECYCLE,
            deadletter=prefix + DEADLETTER,
            control=prefix + CONTROL,
            starts=prefix + STARTS,
        )

    @classmethod
    def from_settings(cls, settings: PrefixedSettings) -> Topics:
        return cls.with_prefix(settings.topic_prefix)

    def all(self) -> tuple[str, ...]:
        """Every topic of the engine, for creating or checking them together."""
        return (self.lifecycle, self.deadletter, self.control, self.starts)

    def inputs(self) -> tuple[str, ...]:
        """The engine topics the coordinator reads (besides those its sagas name)."""
        return (self.control, self.starts)
