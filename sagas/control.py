"""Messages on the coordinator's own input topic (`saga.control`).

Starts requested through the API or CLI, operator commands and fired timers
all travel through Kafka keyed by saga id, so they are ordered with the
replies of the same saga and survive a crash of whoever sent them.
"""

from __future__ import annotations

import uuid
from typing import Any

from events.envelope import CloudEvent, derived_id, new_event
from sagas.messages import Abort, Message, Resolve, RetryFailed, Skip, StartSaga, TimerFired

SOURCE = "sagastream/control"

START = "saga.start"
TIMER_FIRED = "saga.timer.fired"
ABORT = "saga.abort"
RETRY = "saga.retry"
SKIP = "saga.skip"
RESOLVE = "saga.resolve"

CONTROL_TYPES = (START, TIMER_FIRED, ABORT, RETRY, SKIP, RESOLVE)


class ControlMessageError(ValueError):
    """A record on the control topic is not a control message we understand."""

    def __init__(self, event: CloudEvent, problem: str) -> None:
        super().__init__(
            f"control message {event.id!r} of type {event.type!r} for saga {event.sagaid!r}: "
            f"{problem}; expected one of {', '.join(CONTROL_TYPES)}"
        )


def start_request(
    saga: str, data: dict[str, Any], *, saga_id: str | None = None, version: int | None = None
) -> CloudEvent:
    sid = saga_id or str(uuid.uuid4())
    payload: dict[str, Any] = {"saga": saga, "data": data}
    if version is not None:
        payload["version"] = version
    return new_event(START, source=SOURCE, sagaid=sid, data=payload, id=derived_id(START, sid))


def timer_fired(saga_id: str, token: str) -> CloudEvent:
    # The id is the token: the same timer fired twice is the same message.
    return new_event(TIMER_FIRED, source=SOURCE, sagaid=saga_id, data={"token": token}, id=token)


def operator_command(
    type_: str, saga_id: str, *, reason: str, step: str | None = None
) -> CloudEvent:
    data: dict[str, Any] = {"reason": reason}
    if step is not None:
        data["step"] = step
    return new_event(type_, source=SOURCE, sagaid=saga_id, data=data)


def to_message(event: CloudEvent) -> Message:
    """The state-machine message a control event stands for."""
    data = event.data
    reason = str(data.get("reason") or "by operator")
    if event.type == START:
        payload = data.get("data", {})
        if not isinstance(payload, dict):
            raise ControlMessageError(event, "'data.data' must be a JSON object")
        return StartSaga(event.sagaid, payload)
    if event.type == TIMER_FIRED:
        token = data.get("token")
        if not isinstance(token, str):
            raise ControlMessageError(event, "'data.token' must be a string")
        return TimerFired(token)
    if event.type == ABORT:
        return Abort(reason)
    if event.type == RETRY:
        return RetryFailed(reason)
    if event.type == SKIP:
        step = data.get("step")
        if not isinstance(step, str):
            raise ControlMessageError(event, "'data.step' must name the step to skip")
        return Skip(step, reason)
    if event.type == RESOLVE:
        return Resolve(reason)
    raise ControlMessageError(event, "unknown control type")
