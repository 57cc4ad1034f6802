"""What goes into the state machine and what comes out of it.

Inputs are commands to the saga (start, abort, operator repairs), events it
observes (replies and choreography events) and timer firings. The output is a
`Decision`: the new state plus everything the runner must send and schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from events.codec import encode_fields
from events.envelope import CloudEvent
from sagas.state import SagaState


@dataclass(frozen=True, slots=True)
class StartSaga:
    saga_id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observed:
    """A reply to one of our commands, or a participant's own event (choreography)."""

    event: CloudEvent


@dataclass(frozen=True, slots=True)
class TimerFired:
    token: str


@dataclass(frozen=True, slots=True)
class Abort:
    reason: str = "aborted by operator"


@dataclass(frozen=True, slots=True)
class RetryFailed:
    """Operator: try the given-up action of a `failed` saga again, with a fresh budget."""

    reason: str = "retried by operator"


@dataclass(frozen=True, slots=True)
class Skip:
    """Operator: mark a given-up action as done by hand, with the reason kept in history."""

    step: str
    reason: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """Operator: declare a `failed` saga repaired by hand; it ends where it was heading."""

    reason: str


Message = StartSaga | Observed | TimerFired | Abort | RetryFailed | Skip | Resolve


class Outcome(StrEnum):
    """What the message did, for metrics and logs; only APPLIED changes the state."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"
    UNKNOWN = "unknown"
    UNKNOWN_SAGA = "unknown_saga"
    STALE_TIMER = "stale_timer"
    REJECTED = "rejected"
    #: a signal for a waiting step that is not waiting (too early, too late, a second one)
    IGNORED_SIGNAL = "ignored_signal"


@dataclass(slots=True)  # not frozen: built for every event a decision emits
class Emitted:
    """An event the state machine emits, as its attributes: encoded straight to a record
    (`encode`), the `CloudEvent` built only for a reader that wants one (`cloud_event`).

    Not validated: the machine builds every attribute itself (derived ids, the
    definition's types, the saga id), and `encode` writes what `events.codec.encode`
    writes for the same `CloudEvent`, byte for byte."""

    id: str
    source: str
    type: str
    time: datetime
    sagaid: str
    data: dict[str, Any]

    def encode(self) -> tuple[bytes, list[tuple[str, bytes]]]:
        return encode_fields(self.id, self.source, self.type, self.time, self.sagaid, self.data)

    def cloud_event(self) -> CloudEvent:
        return CloudEvent.model_validate(
            {
                "id": self.id,
                "source": self.source,
                "type": self.type,
                "time": self.time,
                "sagaid": self.sagaid,
                "data": self.data,
            }
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    emitted: Emitted

    @property
    def event(self) -> CloudEvent:
        """The command as a validated `CloudEvent` (built on each call: for readers)."""
        return self.emitted.cloud_event()


@dataclass(frozen=True, slots=True)
class TimerRequest:
    token: str
    due: float


@dataclass(frozen=True, slots=True)
class Signal:
    """A fact for metrics: kind is retry | timeout | step_done | compensation | late_effect | finished."""

    kind: str
    step: str | None = None
    value: float = 0.0
    label: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    state: SagaState | None
    outcome: Outcome
    commands: tuple[Outgoing, ...] = ()
    lifecycle: tuple[Emitted, ...] = ()
    timers: tuple[TimerRequest, ...] = ()
    signals: tuple[Signal, ...] = ()
    note: str = ""
