"""Which saga, definition and state-machine message a decoded record stands for.

Pure: given the loaded definitions, the record's topic and event, and the
saga's current state, say what to do; the coordinator then does it.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.envelope import CloudEvent
from sagas import control
from sagas.definition import SagaDefinition
from sagas.errors import UnknownSagaError
from sagas.loader import DefinitionRegistry
from sagas.messages import Message, Observed, StartSaga
from sagas.state import SagaState


@dataclass(frozen=True, slots=True)
class Route:
    definition: SagaDefinition
    message: Message


@dataclass(frozen=True, slots=True)
class Reject:
    """The record cannot be applied to any saga: it goes to the dead-letter topic."""

    reason: str
    detail: str


def route(
    registry: DefinitionRegistry,
    triggers: dict[tuple[str, str], SagaDefinition],
    control_topic: str,
    topic: str,
    event: CloudEvent,
    state: SagaState | None,
) -> Route | Reject:
    if topic == control_topic:
        try:
            message = control.to_message(event)
        except control.ControlMessageError as exc:
            return Reject("invalid-control", str(exc))
        if isinstance(message, StartSaga):
            name = event.data.get("saga")
            try:
                definition = registry.get(str(name), event.data.get("version"))
            except UnknownSagaError as exc:
                return Reject("unknown-saga-definition", str(exc))
            return Route(definition, message)
        return _existing(registry, state, event, message)
    trigger = triggers.get((topic, event.type))
    if trigger is not None and state is None:
        return Route(trigger, StartSaga(event.sagaid, dict(event.data)))
    return _existing(registry, state, event, Observed(event))


def _existing(
    registry: DefinitionRegistry, state: SagaState | None, event: CloudEvent, message: Message
) -> Route | Reject:
    if state is None:
        return Reject(
            "unknown-saga",
            f"{event.type!r} (id {event.id!r}) is for saga {event.sagaid!r}, which this "
            f"coordinator has never started; check the record's sagaid and key",
        )
    try:
        return Route(registry.get(state.name, state.version), message)
    except UnknownSagaError as exc:
        return Reject("unknown-saga-definition", f"saga {event.sagaid!r}: {exc}")
