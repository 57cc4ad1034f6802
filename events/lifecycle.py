"""The lifecycle events of wire contract v1: what the coordinator publishes on
``saga.lifecycle``, keyed by saga id, and what each one's ``data`` holds.

Importing this module registers them in ``events.catalog.default_catalog``, so
that `sagas schema export` publishes them with the participants' types. Every
event's data has ``saga``, ``version`` and ``status`` (the saga's status after
the event); fields not named here may be added later, so readers ignore them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from events.catalog import default_catalog


class Lifecycle(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    saga: str = Field(description="The saga definition's name.")
    version: int = Field(description="The definition version the saga runs.")
    status: str = Field(
        description="The saga's status after the event: running, compensating, completed, "
        "compensated, failed or aborted."
    )


class Started(Lifecycle):
    context: dict[str, Any] = Field(description="The saga's data as it started.")


class StepSucceeded(Lifecycle):
    step: str
    attempt: int = Field(ge=1, description="The attempt that succeeded (1: the first).")


class StepFailed(Lifecycle):
    step: str
    reason: str
    attempt: int = Field(ge=1)


class Compensating(Lifecycle):
    reason: str = Field(description="Why the saga turned back.")


class LateSucceeded(Lifecycle):
    step: str
    type: str = Field(description="The late success event's type.")
    action: Literal[
        "compensate", "compensate_after_current", "compensate_in_turn", "parked", "nothing_to_undo"
    ] = Field(description="What the engine does about the late effect.")


class LateCompensated(Lifecycle):
    step: str
    type: str = Field(description="The compensation reply's type.")


class StepSkipped(Lifecycle):
    step: str
    reason: str = Field(description="Why the step did not run, e.g. 'condition is false'.")
    when: str | None = Field(default=None, description="The step's condition, if it had one.")


class StepWaiting(Lifecycle):
    step: str
    type: str = Field(description="The signal that settles the step (e.g. claim.approved).")
    failure: list[str] = Field(description="Signals that refuse it.")
    topic: str = Field(description="Where the signal is read.")
    deadline: float = Field(description="Epoch seconds when the step's deadline passes.")


class StepExpired(Lifecycle):
    step: str
    continue_at: str = Field(description="The later step the saga goes on at.")


class Finished(Lifecycle):
    """``saga.completed``, ``saga.compensated``, ``saga.aborted``, and ``saga.failed`` when
    an operator's repair fails it for good."""

    context: dict[str, Any] | None = None
    reason: str | None = Field(default=None, description="Set if a step failed.")
    resolved_by_operator: str | None = Field(
        default=None, description="The operator's reason, when one resolved the saga."
    )


class Parked(Finished):
    """``saga.failed``: parked for an operator (a compensation gave up, or after the pivot)."""

    phase: Literal["forward", "backward"] | None = None


#: type -> payload model, in the order a saga may publish them
LIFECYCLE: dict[str, type[Lifecycle]] = {
    "saga.started": Started,
    "saga.step.succeeded": StepSucceeded,
    "saga.step.failed": StepFailed,
    "saga.step.skipped": StepSkipped,
    "saga.step.waiting": StepWaiting,
    "saga.step.expired": StepExpired,
    "saga.compensating": Compensating,
    "saga.step.late_succeeded": LateSucceeded,
    "saga.step.late_compensated": LateCompensated,
    "saga.completed": Finished,
    "saga.compensated": Finished,
    "saga.aborted": Finished,
    "saga.failed": Parked,
}
LIFECYCLE_TYPES = tuple(LIFECYCLE)

for _type, _model in LIFECYCLE.items():
    default_catalog.register(_type, _model)
