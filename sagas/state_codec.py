"""SagaState <-> bytes for the coordinator's changelog-backed table."""

from __future__ import annotations

import orjson

from sagas.state import SagaState


def dump_state(state: SagaState) -> bytes:
    # Unset optional fields (times not reached, no outcome yet) are left out: a quarter
    # of a running saga's bytes, in memory and in the changelog. Loading restores them.
    return orjson.dumps(state.model_dump(mode="json", exclude_none=True))


def load_state(raw: bytes) -> SagaState:
    return SagaState.model_validate(orjson.loads(raw))
