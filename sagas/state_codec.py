"""SagaState <-> bytes for the coordinator's changelog-backed table.

Serialised by pydantic-core straight to JSON bytes (no Python dict in between):
a third cheaper than ``model_dump`` + orjson, and the bytes are exact-size (the
table keeps every state; orjson's output kept its 8 KiB work buffer).
"""

from __future__ import annotations

from sagas.state import SagaState, StepState

_STATE = SagaState.__pydantic_serializer__
_STEP = StepState.__pydantic_serializer__


def dump_state(state: SagaState) -> bytes:
    # Unset optional fields (times not reached, no outcome yet) are left out: a third of
    # a running saga's bytes, in memory and in the changelog. Loading restores them.
    head = _STATE.to_json(state, exclude_none=True, exclude={"steps"})
    # Steps not reached yet are all defaults: stored as {} (loading restores them).
    steps = b",".join([_STEP.to_json(step, exclude_defaults=True) for step in state.steps])
    return b"".join((head[:-1], b',"steps":[', steps, b"]}"))


def load_state(raw: bytes) -> SagaState:
    return SagaState.model_validate_json(raw)
