"""SagaState <-> bytes for the coordinator's changelog-backed table.

Serialised by pydantic-core straight to JSON bytes (no Python dict in between):
a third cheaper than ``model_dump`` + orjson, and the bytes are exact-size (the
table keeps every state; orjson's output kept its 8 KiB work buffer). Loading
validates the bytes against the state's types (pydantic-core), so a stored
state that is not one fails here, with the field that is wrong, not later in
the state machine.
"""

from __future__ import annotations

from pydantic import TypeAdapter

from sagas.state import SagaState, StepState

_STATE = TypeAdapter(SagaState)
# the core (de)serialisers themselves: this runs for every record the coordinator decides
_STATE_JSON = _STATE.serializer.to_json
_STEP_JSON = TypeAdapter(StepState).serializer.to_json
_STATE_FROM_JSON = _STATE.validator.validate_json


def dump_state(state: SagaState) -> bytes:
    # Unset optional fields (times not reached, no outcome yet) are left out: a third of
    # a running saga's bytes, in memory and in the changelog. Loading restores them.
    head = _STATE_JSON(state, exclude_none=True, exclude={"steps"})
    # Steps not reached yet are all defaults: stored as {} (loading restores them).
    steps = b",".join([_STEP_JSON(step, exclude_defaults=True) for step in state.steps])
    return b"".join((head[:-1], b',"steps":[', steps, b"]}"))


def load_state(raw: bytes) -> SagaState:
    """The state in ``raw``; `pydantic.ValidationError` names what is not a saga state."""
    return _STATE_FROM_JSON(raw)  # type: ignore[no-any-return]
