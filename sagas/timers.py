"""Deadlines of the sagas a coordinator owns, in memory, rebuilt from the table.

The table is the truth (each saga's state lists its armed timers); this heap
only says which fall due next. A due timer is not applied here: the
coordinator publishes it to the control topic, keyed by saga id, so it is
ordered with that saga's replies. A timer that fires after the saga moved on
is recognised as stale by the state machine.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, saga_id: str, token: str) -> None:
        heapq.heappush(self._heap, (due, token, saga_id))

    def pop_due(self, now: float, limit: int = 10_000) -> list[tuple[str, str]]:
        """(saga id, token) of up to ``limit`` timers due at ``now``, earliest first."""
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            _, token, saga_id = heapq.heappop(self._heap)
            due.append((saga_id, token))
        return due

    def replace(self, entries: Iterable[tuple[float, str, str]]) -> None:
        """Forget everything and hold exactly ``entries`` of (due, saga id, token)."""
        self._heap = [(due, token, saga_id) for due, saga_id, token in entries]
        heapq.heapify(self._heap)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None
