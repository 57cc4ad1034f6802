"""The recorded state of one saga instance: what the state machine reads and returns.

It is stored in the coordinator's table keyed by saga id, so it is small and
plain (numbers are epoch seconds) and round-trips through JSON.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


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


class StepState(BaseModel):
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    comp_attempt: int = 0
    budget_base: int = Field(default=0, description="Attempts before the last operator retry.")
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None
    comp_outcome: str | None = None


class TimerSpec(BaseModel):
    kind: Literal["deadline", "retry"]
    step: int
    phase: Phase
    attempt: int
    due: float


class HistoryEntry(BaseModel):
    at: float
    event: str
    step: str | None = None
    detail: str | None = None


class SagaState(BaseModel):
    saga_id: str
    name: str
    version: int
    status: SagaStatus = SagaStatus.RUNNING
    phase: Literal["forward", "backward"] = "forward"
    context: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepState]
    stage: int = 0
    started_at: float
    updated_at: float
    finished_at: float | None = None
    #: command id -> (step index, phase, attempt) for every command this saga sent
    issued: dict[str, tuple[int, Phase, int]] = Field(default_factory=dict)
    #: timer token -> what it is for; a fired token not in here is stale
    timers: dict[str, TimerSpec] = Field(default_factory=dict)
    compensation_plan: list[int] = Field(default_factory=list)
    failure: str | None = None
    abort_reason: str | None = None
    lifecycle_seq: int = 0
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def working_copy(self) -> SagaState:
        """A copy the state machine may change without touching this one.

        Cheaper than a deep copy: containers are copied one level down, which is
        all the machine changes (it replaces context keys and timer/history
        entries, never mutates them in place; step states are copied).
        """
        return self.model_copy(
            update={
                "context": dict(self.context),
                "steps": [step.model_copy() for step in self.steps],
                "issued": dict(self.issued),
                "timers": dict(self.timers),
                "compensation_plan": list(self.compensation_plan),
                "history": list(self.history),
            }
        )
