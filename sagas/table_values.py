"""What the coordinator's table holds besides saga states, and the timer tokens for them."""

from __future__ import annotations

from sagas.state import SagaStatus

#: A table value that is not a saga yet: events that arrived before their saga started.
EARLY_MARKER = b"E"
EARLY_TOKEN = "early:"
#: A timer token that removes a finished saga from the table once its retention is over.
PURGE_TOKEN = "purge:"
TERMINAL_STATUSES = frozenset(status.value for status in SagaStatus if status.terminal)
