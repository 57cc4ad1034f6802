"""Decoded states of recently active sagas, bounded, so memory stays per-table not per-object.

The table (bytes) is the truth; this only saves re-parsing the state of a saga
that is in the middle of its steps. Least recently used entries go first.
"""

from __future__ import annotations

from collections import OrderedDict

from sagas.state import SagaState


class LiveStates:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, SagaState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, saga_id: str) -> SagaState | None:
        state = self._states.get(saga_id)
        if state is not None:
            self._states.move_to_end(saga_id)
        return state

    def put(self, state: SagaState) -> None:
        """Remember a running saga's state; a finished one is forgotten."""
        if state.terminal or self.capacity == 0:
            self._states.pop(state.saga_id, None)
            return
        self._states[state.saga_id] = state
        self._states.move_to_end(state.saga_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def forget(self, saga_id: str) -> None:
        self._states.pop(saga_id, None)

    def clear(self) -> None:
        self._states.clear()
