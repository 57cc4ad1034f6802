"""Messages on the coordinator's own input topic (`saga.control`).

Starts requested through the API or CLI, operator commands and fired timers
all travel through Kafka keyed by saga id, so they are ordered with the
replies of the same saga and survive a crash of whoever sent them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.envelope import CloudEvent, derived_id, new_event
from events.saga_ids import saga_id_problem
from sagas.errors import InvalidSagaIdError
from sagas.messages import (
    Abort,
    Message,
    Observed,
    Resolve,
    RetryFailed,
    Skip,
    StartSaga,
    TimerFired,
)

SOURCE = "sagastream/control"

START = "saga.start"
TIMER_FIRED = "saga.timer.fired"
ABORT = "saga.abort"
RETRY = "saga.retry"
SKIP = "saga.skip"
RESOLVE = "saga.resolve"
#: a signal for a waiting step (``awaits:``), sent by `sagas signal` or the HTTP API
SIGNAL = "saga.signal"

CONTROL_TYPES = (START, TIMER_FIRED, ABORT, RETRY, SKIP, RESOLVE, SIGNAL)
#: longest saga or step name, and longest token or reason, a control record may carry
MAX_NAME = 249
MAX_TEXT = 10_000


class ControlMessageError(ValueError):
    """A record on the control topic is not a control message we understand."""

    def __init__(self, event: CloudEvent, problem: str) -> None:
        super().__init__(
            f"control message {event.id!r} of type {event.type!r} for saga {event.sagaid!r}: "
            f"{problem}; control types: {', '.join(CONTROL_TYPES)} (fields in sagas/control.py)"
        )


def start_request(
    saga: str, data: dict[str, Any], *, saga_id: str | None = None, version: int | None = None
) -> CloudEvent:
    """The control record that starts ``saga``; raises `InvalidSagaIdError` for an id the
    coordinator would refuse (`events.saga_ids`)."""
    sid = saga_id or str(uuid.uuid4())
    problem = saga_id_problem(sid)
    if problem is not None:
        raise InvalidSagaIdError(f"cannot start saga {saga!r}: {problem}")
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


def signal(
    saga_id: str, type_: str, data: dict[str, Any] | None = None, *, source: str = SOURCE
) -> CloudEvent:
    """The control record carrying signal ``type_`` (its ``data`` joins the context)."""
    payload = {"type": type_, "data": dict(data or {}), "source": source}
    return new_event(SIGNAL, source=SOURCE, sagaid=saga_id, data=payload)


class _Data(BaseModel):
    """The ``data`` of a control record: checked whole at decode, strictly (no coercion),
    so nothing later (the registry lookup, the machine) meets a value of the wrong type."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _StartData(_Data):
    saga: str = Field(min_length=1, max_length=MAX_NAME)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    data: dict[str, Any] = Field(default_factory=dict)


class _TimerData(_Data):
    token: str = Field(min_length=1, max_length=MAX_TEXT)


class _ReasonData(_Data):
    reason: str | None = Field(default=None, max_length=MAX_TEXT)


class _SkipData(_ReasonData):
    step: str = Field(min_length=1, max_length=MAX_NAME)


class _SignalData(_Data):
    type: str = Field(min_length=1, max_length=MAX_NAME)
    data: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default=SOURCE, min_length=1, max_length=MAX_NAME)


_SCHEMAS: dict[str, type[_Data]] = {
    START: _StartData,
    TIMER_FIRED: _TimerData,
    ABORT: _ReasonData,
    RETRY: _ReasonData,
    SKIP: _SkipData,
    RESOLVE: _ReasonData,
    SIGNAL: _SignalData,
}


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """A checked control record: the machine's message, and for a start which saga."""

    message: Message
    saga: str | None = None
    version: int | None = None


def parse(event: CloudEvent) -> ControlRequest:
    """The checked request in a control event; raises `ControlMessageError` naming each
    field that is missing or of the wrong type."""
    schema = _SCHEMAS.get(event.type)
    if schema is None:
        raise ControlMessageError(event, "unknown control type")
    try:
        data = schema.model_validate(event.data)
    except ValidationError as exc:
        problems = "; ".join(
            f"'data.{'.'.join(map(str, e['loc']))}': {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise ControlMessageError(event, problems) from None
    if isinstance(data, _StartData):
        return ControlRequest(StartSaga(event.sagaid, dict(data.data)), data.saga, data.version)
    if isinstance(data, _TimerData):
        return ControlRequest(TimerFired(data.token))
    if isinstance(data, _SignalData):
        # The signal as if published on its topic: the control record's id keeps it unique.
        observed = new_event(
            data.type,
            source=data.source,
            sagaid=event.sagaid,
            data=dict(data.data),
            id=event.id,
            time=event.time,
        )
        return ControlRequest(Observed(observed))
    assert isinstance(data, _ReasonData)
    reason = data.reason or "by operator"
    if isinstance(data, _SkipData):
        return ControlRequest(Skip(data.step, reason))
    if event.type == ABORT:
        return ControlRequest(Abort(reason))
    if event.type == RETRY:
        return ControlRequest(RetryFailed(reason))
    return ControlRequest(Resolve(reason))


def to_message(event: CloudEvent) -> Message:
    """The state-machine message a control event stands for (see `parse`)."""
    return parse(event).message
