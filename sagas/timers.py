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

from sagas import table_codec
from sagas.state import SagaState
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN


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


def deadlines_in_table(
    items: Iterable[tuple[bytes, bytes]], retention: float
) -> list[tuple[float, str, str]]:
    """(due, saga id, token) of every deadline in stored states: steps' timers,
    early-event expiries, and the retention purge of finished sagas."""
    return table_codec.deadlines(items, retention)


def still_armed(token: str, raw: bytes | None, decoded: SagaState | None) -> bool:
    """Is ``token`` armed in the saga's current state (stored ``raw``, or ``decoded``)?

    Every step arms a deadline that its reply disarms; publishing each of those
    when it falls due, only for the machine to drop it as stale, would double the
    coordinator's input. A token the current state does not hold can never be
    armed again (tokens name the step, phase and attempt), so it need not be sent.
    """
    if token.startswith((EARLY_TOKEN, PURGE_TOKEN)):
        return raw is not None
    if decoded is not None:
        return token in decoded.timers
    return table_codec.holds_timer(raw, token)
