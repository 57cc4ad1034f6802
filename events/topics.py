"""Topic names of wire contract v1, with the deployment's prefix applied.

The contract fixes three topics of the engine itself:

- ``saga.lifecycle``  lifecycle events (``saga.started`` ... ``saga.aborted``);
- ``saga.deadletter`` records that could not be decoded or validated, unchanged;
- ``saga.control``    the coordinator's own input: timers and operator commands.

Participants' command and reply topics are named by the saga definitions.
``SAGAS_TOPIC_PREFIX`` is prepended verbatim to every name, so several
deployments (or test runs) can share one cluster: prefix ``"staging."`` gives
``staging.saga.lifecycle``.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.kafka_settings import KafkaSettings

LIFECYCLE = "saga.lifecycle"
DEADLETTER = "saga.deadletter"
CONTROL = "saga.control"


def topic(name: str, settings: KafkaSettings) -> str:
    """``name`` with the configured prefix applied."""
    return f"{settings.topic_prefix}{name}"


@dataclass(frozen=True, slots=True)
class Topics:
    """The engine's own topics, fully named for one deployment."""

    lifecycle: str = LIFECYCLE
    deadletter: str = DEADLETTER
    control: str = CONTROL

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(
            lifecycle=prefix + LIFECYCLE,
            deadletter=prefix + DEADLETTER,
            control=prefix + CONTROL,
        )

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> Topics:
        return cls.with_prefix(settings.topic_prefix)

    def all(self) -> tuple[str, ...]:
        """Every topic of the engine, for creating or checking them together."""
        return (self.lifecycle, self.deadletter, self.control)
