"""The recorded state of one saga instance: what the state machine reads and returns.

It is stored in the coordinator's table keyed by saga id, so it is small and
plain (numbers are epoch seconds) and round-trips through JSON
(`sagas.state_codec`, which validates what it loads).

Plain slotted dataclasses, not pydantic models: the state machine copies a
state and builds timer and history entries for every record it decides, and
dataclasses do that several times cheaper (no validation of values the
machine itself computed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class SagaStatus(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED, SagaStatus.ABORTED}
)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_RETRY = "waiting_retry"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    SKIPPED = "skipped"


#: A step in one of these may have taken effect without our knowing it.
IN_DOUBT = frozenset({StepStatus.TIMED_OUT, StepStatus.CANCELLED})
#: Compensation of a step is finished (or given up on by an operator).
UNDONE = frozenset({StepStatus.COMPENSATED, StepStatus.SKIPPED})

Phase = Literal["do", "undo"]


@dataclass(slots=True)
class StepState:
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    comp_attempt: int = 0
    #: attempts before the last operator retry
    budget_base: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None
    comp_outcome: str | None = None
    #: successes that came after the saga had given up on this step (late effects) ...
    late: int = 0
    #: ... and how many of them a finished compensation has undone since
    late_undone: int = 0
    #: a success came while a compensation sent before it was in flight: send another
    recompensate: bool = False
    #: compensation attempts before this one undid an earlier effect, not the latest
    undo_from: int = 0

    def copy(self) -> StepState:
        return StepState(
            self.status,
            self.attempt,
            self.comp_attempt,
            self.budget_base,
            self.started_at,
            self.finished_at,
            self.outcome,
            self.comp_outcome,
            self.late,
            self.late_undone,
            self.recompensate,
            self.undo_from,
        )


@dataclass(slots=True)
class TimerSpec:
    kind: Literal["deadline", "retry"]
    step: int
    phase: Phase
    attempt: int
    due: float


@dataclass(slots=True)
class HeldEvent:
    """A choreography event for a step whose stage has not begun: applied when it does."""

    step: int
    type: str
    id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class HistoryEntry:
    at: float
    event: str
    step: str | None = None
    detail: str | None = None


@dataclass(slots=True, kw_only=True)
class SagaState:
    saga_id: str
    name: str
    version: int
    status: SagaStatus = SagaStatus.RUNNING
    #: why an operator should look (a record of this saga raised: ``processing-error``);
    #: right after ``status`` so the census reads it without parsing (`sagas.table_codec`)
    attention: str | None = None
    phase: Literal["forward", "backward"] = "forward"
    context: dict[str, Any] = field(default_factory=dict)
    steps: list[StepState]
    stage: int = 0
    started_at: float
    updated_at: float
    finished_at: float | None = None
    #: command id -> (step index, phase, attempt) for every command this saga sent
    issued: dict[str, tuple[int, Phase, int]] = field(default_factory=dict)
    #: timer token -> what it is for; a fired token not in here is stale
    timers: dict[str, TimerSpec] = field(default_factory=dict)
    compensation_plan: list[int] = field(default_factory=list)
    #: events of later steps, held so that steps resolve (and lifecycle reads) in order
    held: list[HeldEvent] = field(default_factory=list)
    failure: str | None = None
    abort_reason: str | None = None
    lifecycle_seq: int = 0
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def working_copy(self) -> SagaState:
        """A copy the state machine may change without touching this one.

        Cheaper than a deep copy: containers are copied one level down, which is
        all the machine changes (it replaces context keys and timer/history
        entries, never mutates them in place; step states are copied).
        """
        return SagaState(
            saga_id=self.saga_id,
            name=self.name,
            version=self.version,
            status=self.status,
            attention=self.attention,
            phase=self.phase,
            context=dict(self.context),
            steps=[step.copy() for step in self.steps],
            stage=self.stage,
            started_at=self.started_at,
            updated_at=self.updated_at,
            finished_at=self.finished_at,
            issued=dict(self.issued),
            timers=dict(self.timers),
            compensation_plan=list(self.compensation_plan),
            held=list(self.held),
            failure=self.failure,
            abort_reason=self.abort_reason,
            lifecycle_seq=self.lifecycle_seq,
            history=list(self.history),
        )
