"""`SagaState.working_copy` and `StepState.copy` list the fields by hand (they run for
every record the coordinator decides): every field must come across, and a field added
later without them fails here."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from sagas.state import (
    HeldEvent,
    HistoryEntry,
    SagaState,
    SagaStatus,
    StepState,
    StepStatus,
    TimerSpec,
)

STEP_VALUES: dict[str, Any] = {
    "status": StepStatus.COMPENSATING,
    "attempt": 3,
    "comp_attempt": 2,
    "budget_base": 1,
    "started_at": 10.0,
    "finished_at": 12.5,
    "outcome": "a.done",
    "comp_outcome": "a.undone",
    "late": 2,
    "late_undone": 1,
    "recompensate": True,
    "undo_from": 3,
}

STATE_VALUES: dict[str, Any] = {
    "saga_id": "s-1",
    "name": "order",
    "version": 3,
    "status": SagaStatus.COMPENSATING,
    "attention": "processing-error: KeyError 'x' (digest 0123456789ab)",
    "phase": "backward",
    "context": {"order_id": "o-1"},
    "steps": [StepState(**STEP_VALUES), StepState()],
    "stage": 1,
    "started_at": 10.0,
    "updated_at": 13.0,
    "finished_at": 14.0,
    "issued": {"c-1": (0, "do", 1)},
    "timers": {"t-1": TimerSpec(kind="retry", step=0, phase="undo", attempt=2, due=20.0)},
    "compensation_plan": [0],
    "held": [HeldEvent(step=1, type="b.done", id="e-1", data={"b": 1})],
    "failure": "step 'b' failed",
    "abort_reason": "operator",
    "lifecycle_seq": 7,
    "history": [HistoryEntry(at=10.0, event="saga.started")],
}


def _not_default(cls: type, values: dict[str, Any]) -> None:
    for f in fields(cls):
        assert f.name in values, f"give {cls.__name__}.{f.name} a value in this test"
        if f.default is not MISSING:
            assert values[f.name] != f.default, f"{cls.__name__}.{f.name}: use a non-default"


def test_step_copy_keeps_every_field() -> None:
    _not_default(StepState, STEP_VALUES)
    step = StepState(**STEP_VALUES)
    copy = step.copy()
    assert copy == step and copy is not step


def test_working_copy_keeps_every_field_and_shares_no_container() -> None:
    _not_default(SagaState, STATE_VALUES)
    state = SagaState(**STATE_VALUES)
    copy = state.working_copy()
    assert copy == state
    for f in fields(SagaState):
        value = getattr(state, f.name)
        if isinstance(value, (dict, list)):
            assert getattr(copy, f.name) is not value, f"{f.name} is shared with the original"
    assert all(a is not b for a, b in zip(copy.steps, state.steps, strict=True))
