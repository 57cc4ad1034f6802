"""Which saga, definition and state-machine message a decoded record stands for.

Pure: given the loaded definitions, the record's topic and event, and the
saga's current state, say what to do; the coordinator then does it.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.envelope import CloudEvent
from events.saga_ids import saga_id_problem
from events.topics import Topics
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
    engine: Topics,
    topic: str,
    event: CloudEvent,
    state: SagaState | None,
) -> Route | Reject:
    if topic in (engine.control, engine.starts):
        try:
            request = control.parse(event)
        except control.ControlMessageError as exc:
            return Reject("invalid-control", str(exc))
        message = request.message
        if topic == engine.starts and not isinstance(message, StartSaga):
            return Reject(
                "invalid-start",
                f"{event.type!r} for saga {event.sagaid!r} on {topic}, which takes only "
                f"{control.START!r} requests; send operator commands and signals to "
                f"{engine.control}",
            )
        if isinstance(message, StartSaga):
            if state is None and (problem := saga_id_problem(event.sagaid)):
                return Reject("invalid-saga-id", f"{control.START!r} on {topic}: {problem}")
            assert request.saga is not None
            try:
                definition = registry.get(request.saga, request.version)
            except UnknownSagaError as exc:
                return Reject("unknown-saga-definition", str(exc))
            return Route(definition, message)
        return _existing(registry, state, event, message)
    trigger = triggers.get((topic, event.type))
    if trigger is not None and state is None:
        if problem := saga_id_problem(event.sagaid):
            return Reject("invalid-saga-id", f"trigger {event.type!r} on {topic}: {problem}")
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
