"""SagaState <-> bytes for the coordinator's changelog-backed table."""

from __future__ import annotations

import orjson

from sagas.state import SagaState


def dump_state(state: SagaState) -> bytes:
    return orjson.dumps(state.model_dump(mode="json"))


def load_state(raw: bytes) -> SagaState:
    return SagaState.model_validate(orjson.loads(raw))
